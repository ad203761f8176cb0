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
    "ops_retry_failed_deliveries", "ops_rotate_number", "ops_settle_unknown_deliveries",
}


def test_no_import_errors_and_exactly_the_runbook_dags(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == EXPECTED_DAG_IDS


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
