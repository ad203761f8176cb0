"""Domain package of the advisor content-delivery platform.

DAG files in dags/ are wiring only; every task body calls a plain function in this package.
"""
