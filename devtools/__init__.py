"""Development tooling only: the sandbox of the outside services, the dev stack and the demo world.

Never imported by include/, dags/ or plugins/ (tests/dags/test_dagbag_policy.py checks), and not mounted into
the Airflow services of docker-compose.yml.
"""
