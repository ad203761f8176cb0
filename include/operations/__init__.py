"""Operator actions behind the manual ops_* DAGs, each validated and audited."""
