"""DagBag policy: every DAG imports cleanly, follows the project's conventions, and parsing does no I/O."""
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    import psycopg
    import sqlalchemy

    from airflow.dag_processing.dagbag import DagBag

    def forbidden(*a, **k):
        raise AssertionError("DAG parsing must not do network or database I/O")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", forbidden)
    mp.setattr(socket, "create_connection", forbidden)
    mp.setattr(psycopg, "connect", forbidden)
    mp.setattr(sqlalchemy, "create_engine", forbidden)
    try:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        mp.undo()
    return bag


EXPECTED_DAG_IDS = {
    "nightly_content_window", "pre_delivery_check", "delivery_fanout", "post_delivery_report",
    "daily_backup", "weekly_maintenance", "monthly_maintenance",
    "ops_backfill_delivery", "ops_bulk_approve", "ops_pause_sending", "ops_resume_sending",
    "ops_retry_failed_deliveries", "ops_rotate_number", "ops_settle_unknown_deliveries", "ops_run_business_day",
    "incident_escalation", "ops_edit_oncall_roster", "incident_acknowledgement", "nightly_bulk_approval_offer",
    "ops_security_incident",
    "ops_override_number_ramp", "advisor_delay_notices",
}


def test_no_import_errors_and_exactly_the_runbook_dags(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == EXPECTED_DAG_IDS


def test_every_dag_serializes_as_the_dag_processor_does(dagbag):
    """DagBag parsing is not enough: the dag-processor serializes each DAG for the scheduler and the UI, and a
    DAG that fails there never appears (a dynamic trigger_dag_id did)."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in _dags(dagbag):
        DagSerialization.to_dict(dag)


def test_the_morning_dags_carry_their_deadline_alerts(monkeypatch):
    """05:50 check done by 05:58, fan-out by 06:05, each report checkpoint 5 min after its slot, through
    DeadlineMissedNotifier; and they serialize (the suite's dag.test() runs switch them off, see conftest)."""
    import datetime as dt

    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("FA_DEADLINE_ALERTS", "true")
    expected = {"pre_delivery_check": 8, "delivery_fanout": 5, "post_delivery_report": 5}
    for dag_id, minutes in expected.items():
        dag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py")).dags[dag_id]
        (alert,) = dag.deadline
        assert alert.interval == dt.timedelta(minutes=minutes), dag_id
        assert type(alert.reference).__name__ == "DagRunLogicalDateDeadline"
        assert alert.callback.path.endswith("include.core.notifiers.DeadlineMissedNotifier"), alert.callback.path
        DagSerialization.to_dict(dag)


def test_every_task_has_a_timeout_and_the_delivery_path_wins_contended_slots(dagbag):
    tasks = {(d.dag_id, t.task_id): t for d in _dags(dagbag) for t in d.tasks}
    for key, task in tasks.items():
        assert task.execution_timeout is not None, f"{key} can hang forever"
    prio = {key: task.priority_weight for key, task in tasks.items()}
    slowest_delivery = min(p for (dag_id, _), p in prio.items() if dag_id in ("delivery_fanout", "pre_delivery_check"))
    assert all(p < slowest_delivery for (dag_id, _), p in prio.items()
               if dag_id in ("weekly_maintenance", "monthly_maintenance", "daily_backup", "nightly_content_window"))
    assert tasks[("delivery_fanout", "send_shard")].weight_rule == "absolute"


def test_a_task_result_is_one_xcom_unless_a_dag_uses_its_keys(dagbag):
    """TaskFlow infers multiple_outputs from a `-> dict` annotation and then writes one XCom per key, one API call
    each, at the task's end: about 20 sequential writes at every sender's end (1.5 s under load, measured). A
    task's dict is one XCom (the default of include.core.dagkit.task, which the DAG files use instead of
    airflow.sdk.task); only a task whose keys feed other tasks' arguments says multiple_outputs=True."""
    import re

    for path in sorted((ROOT / "dags").glob("*.py")):
        imported = re.search(r"^from airflow\.sdk import (.*)$", path.read_text(), re.M)
        assert not imported or "task" not in [n.strip() for n in imported.group(1).split(",")], \
            f"{path.name}: import task from include.core.dagkit (one XCom per result)"
    uses_keys = {("ops_run_business_day", "plan_the_day")}
    many = {(d.dag_id, t.task_id) for d in _dags(dagbag) for t in d.tasks if getattr(t, "multiple_outputs", False)}
    assert many == uses_keys


def test_pools_keep_maintenance_off_the_senders(dagbag):
    from include.core import config

    for dag_id in ("delivery_fanout", "ops_backfill_delivery"):
        send = dagbag.dags[dag_id].get_task("send_shard")
        assert send.pool == config.POOL_SENDERS
        # Longer than the unit may legitimately run (deadline + paused time + settling), so Airflow never kills a
        # sender that is still within its own limits.
        assert send.execution_timeout.total_seconds() > config.SENDER_HARD_DEADLINE_S + config.SENDER_MAX_PAUSE_S
    heavy = {("weekly_maintenance", "run_database_upkeep"), ("weekly_maintenance", "archive_old_rows"),
             ("weekly_maintenance", "backup_app_db"), ("weekly_maintenance", "verify_backup_restore"),
             ("monthly_maintenance", "run_dr_drill"), ("daily_backup", "backup_app_db"),
             ("daily_backup", "verify_backup_restore")}
    for dag_id, task_id in heavy:
        assert dagbag.dags[dag_id].get_task(task_id).pool == config.POOL_DB_MAINTENANCE, (dag_id, task_id)
    for dag in _dags(dagbag):  # nothing else may take the senders' pool
        for task in dag.tasks:
            if task.task_id != "send_shard":
                assert task.pool != config.POOL_SENDERS, (dag.dag_id, task.task_id)


def test_one_dag_per_file_named_after_its_id(dagbag):
    for dag in _dags(dagbag):
        assert Path(dag.fileloc).name == f"{dag.dag_id}.py", f"{dag.dag_id} lives in {dag.fileloc}"
    assert sorted(p.stem for p in (ROOT / "dags").glob("*.py")) == sorted(EXPECTED_DAG_IDS)


def test_dag_files_are_wiring_only():
    """A DAG file holds its DAG function and its doc: no module-level helpers (they belong in include/)."""
    import ast

    for path in sorted((ROOT / "dags").glob("*.py")):
        tree = ast.parse(path.read_text())
        funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        assert funcs == [path.stem], f"{path.name} defines {funcs}; only the DAG function belongs there"


def test_production_code_never_imports_dev_tooling():
    """The sandbox, the dev stack and the demo world stay out of every production code path."""
    import ast

    for folder in ("dags", "plugins", "include"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for name in names:
                    assert not name.startswith(("devtools", "tests", "bench")), f"{path}: imports {name}"


def _dags(dagbag):
    return sorted(dagbag.dags.values(), key=lambda d: d.dag_id)


def test_every_dag_has_owner_tags_retries_and_docs(dagbag):
    for dag in _dags(dagbag):
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag.dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} has retries={task.retries}"
            if task.task_id == "fail_run_if_a_task_failed":  # the watcher: the failed task it reports alerted
                assert task.trigger_rule == "one_failed" and not task.on_failure_callback
                continue
            assert task.on_failure_callback, f"{dag.dag_id}.{task.task_id} has no failure alert"


def test_every_dag_has_a_one_line_description(dagbag):
    for dag in _dags(dagbag):
        desc = (dag.description or "").strip()
        assert desc, f"{dag.dag_id} has no description"
        assert len(desc) <= 120 and "\n" not in desc, f"{dag.dag_id}: description is not one short line: {desc!r}"


@pytest.mark.parametrize("dag_id", ["delivery_fanout", "ops_backfill_delivery"])
def test_the_fanout_run_goes_red_on_a_failed_sender_without_waiting_for_the_sla_check(dagbag, dag_id):
    """fail_run_if_a_task_failed watches the queue and the senders only: downstream of the SLA check it would be
    skipped one scheduler pass after every green run's last task, and a failed SLA check is a red leaf anyway."""
    dag = dagbag.dags[dag_id]
    fail_run = dag.get_task("fail_run_if_a_task_failed")
    assert fail_run.trigger_rule == "one_failed"
    assert fail_run.upstream_task_ids == {"prepare_send_queue", "send_shard"}
    assert {t.task_id for t in dag.leaves} == {"validate_delivery_sla", "fail_run_if_a_task_failed"}


def test_backfill_dag_has_its_own_doc(dagbag):
    backfill, fanout = dagbag.dags["ops_backfill_delivery"], dagbag.dags["delivery_fanout"]
    assert backfill.doc_md != fanout.doc_md
    for needle in ("business_date", "reason", "honour_jitter", "audit", "archived", "Airflow's generic backfill"):
        assert needle in backfill.doc_md, f"ops_backfill_delivery doc_md does not mention {needle!r}"


def test_scheduled_dags_use_ist_timetables(dagbag):
    for dag in _dags(dagbag):
        tt = dag.timetable
        if type(tt).__name__ == "NullTimetable":  # manual-only (operator) DAG
            assert not dag.catchup
            continue
        tt = getattr(tt, "timetable", tt)  # AssetOrTimeSchedule: its time part
        tz = getattr(tt, "_timezone", None) or getattr(tt, "timezone", None)
        for attr in ("_timetables", "timetables"):  # core and SDK MultipleCronTriggerTimetable
            if tz is None and getattr(tt, attr, None):
                first = getattr(tt, attr)[0]
                tz = getattr(first, "_timezone", None) or getattr(first, "timezone", None)
        assert tz is not None and "Asia/Kolkata" in str(getattr(tz, "name", tz)), f"{dag.dag_id}: {tt!r}"


def test_ruff_airflow_rules_are_clean():
    ruff = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ruff"
    res = subprocess.run([str(ruff), "check", "--select", "AIR", "dags", "plugins", "include"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
