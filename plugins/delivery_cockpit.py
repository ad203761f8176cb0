"""Airflow plugin: the delivery cockpit, a page of the Airflow UI served by the api-server at /cockpit.

The app (include/operations/cockpit/app.py) is a FastAPI app mounted with `fastapi_apps` at /cockpit; the UI lists it in
its navigation through `external_views` (Airflow 3.1+), which shows /cockpit/ inside the UI at /plugin/delivery-cockpit.

Authentication and roles, all Airflow's own:
* every route (the page, /api/snapshot, /reports/<date>/<file>) needs a logged-in Airflow user
  (`airflow.api_fastapi.core_api.security.get_user`: a JWT as `Authorization: Bearer`, or the UI's `_token` cookie):
  401 without one, 403 with an invalid one;
* Pause and Resume additionally need the auth manager to allow triggering the ops DAG that does the same thing
  (`requires_access_dag("POST", DagAccessEntity.RUN, "ops_pause_sending" / "ops_resume_sending")`): whoever may run
  the ops DAG may press the button, a read-only user (SimpleAuthManager `viewer`) gets 403. The audit log's actor is
  the logged-in user's name.

Like plugins/whatsapp_webhook.py, the app is built on first use by the api-server only (every Airflow process imports
plugins; only the api-server needs FastAPI security).
"""
from __future__ import annotations

import functools

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/cockpit"
OPS_DAG_FOR = {"pause": "ops_pause_sending", "resume": "ops_resume_sending"}


def airflow_user_name():
    """A FastAPI dependency: the logged-in Airflow user's name (401 without a login, 403 with a bad token)."""
    from fastapi import Depends

    from airflow.api_fastapi.core_api.security import get_user

    def user_name(user=Depends(get_user)) -> str:  # no annotation: FastAPI cannot resolve local names in strings
        return user.get_name()

    return user_name


def may_trigger_ops_dag(action: str):
    """A FastAPI dependency: 403 unless the auth manager lets the user trigger the ops DAG behind `action`."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag(method="POST", access_entity=DagAccessEntity.RUN, param_dag_id=OPS_DAG_FOR[action])


@functools.cache
def cockpit_app():
    from include.operations.cockpit.app import create_app

    return create_app(viewer=airflow_user_name(), operator_for=may_trigger_ops_dag, mount_prefix=URL_PREFIX)


class DeliveryCockpitPlugin(AirflowPlugin):
    name = "delivery_cockpit"
    external_views = [{
        "name": "Delivery cockpit",
        "href": f"{URL_PREFIX}/",
        "url_route": "delivery-cockpit",
        "destination": "nav",
        "nav_top_level": True,
    }]

    @property
    def fastapi_apps(self):  # read by the api-server (and `airflow plugins`), never by workers
        return [{"app": cockpit_app(), "url_prefix": URL_PREFIX, "name": "Delivery cockpit"}]
