# Production-like image: the official Airflow 3.3.2 image plus this project's locked dependencies.
FROM apache/airflow:3.3.2-python3.11
COPY requirements-lock.txt /requirements-lock.txt
RUN pip install --no-cache-dir -r /requirements-lock.txt
ENV PYTHONPATH=/opt/airflow/project
