"""Human-in-the-loop decisions through the real stack (`make run`'s supervisor: scheduler, api-server, LocalExecutor).
On Airflow 3.3 a waiting HITL task parks in `awaiting_input`; only the api-server's response handler or the
scheduler's timeout sweep resumes it, so `dag.test()` cannot run these and this test answers through the same REST
route the UI's Required Actions page uses.

* A late *scheduled* delivery_fanout: the stack's fan-out slot is every minute and any lateness counts
  (FA_FANOUT_MAX_LATE_START_S=0), so the scheduler itself makes late scheduled runs. One is answered "Skip today",
  the next is left unanswered: both send nothing, and the unanswered one shows the default applied by nobody.
* An incident (opened by that late start's P0) gets an acknowledgement request from incident_escalation and is
  acknowledged in the UI: the answer lands on its timeline with the user's name.
* The approvers' 21:30 bulk-approval offer, answered "approve all low-risk" with a reason.
Slow (a few minutes): it starts real Airflow."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.support import read_stack_banner, start_stack, wait_until

# The whole-stack tests share one xdist worker (`make test` runs two): each starts real Airflow on the same 2 cores.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("stack")]

DECISION_TIMEOUT_S = 20


class Api:
    def __init__(self, base: str, token: str, scheduler_log=None):
        self.base, self.token, self.scheduler_log = base, token, scheduler_log

    def call(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.load(r)

    def get_or_none(self, path: str):
        try:
            return self.call("GET", path)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def finished(self, dag_id: str, run_id: str, timeout: float = 180) -> dict:
        return wait_until(lambda: (r := self.run(dag_id, run_id))["state"] in ("success", "failed") and r,
                          timeout=timeout, poll_s=1, what=f"{dag_id} {run_id} finished")

    def hitl(self, dag_id: str, run_id: str, task_id: str) -> dict | None:
        return self.get_or_none(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails")

    def waiting_hitl(self, dag_id: str, run_id: str, task_id: str, timeout: float = 120) -> dict:
        def parked():
            detail = self.hitl(dag_id, run_id, task_id)
            ti = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
            return detail if detail and ti["state"] == "awaiting_input" else None
        return wait_until(parked, timeout=timeout, poll_s=1, what=f"{dag_id}.{task_id} waiting for a person")

    def _exit_handled(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> bool:
        """The scheduler logged its handling of the executor event of that try ("TaskInstance Finished: ...")."""
        head = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}, map_index=-1,"
        return any(head in line and f"try_number={try_number}," in line
                   for line in self.scheduler_log.read_text(errors="replace").splitlines())

    def ti(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def answer(self, dag_id: str, run_id: str, task_id: str, choice: str, params: dict | None = None) -> int:
        """Answer as the Required Actions form does (every field the request shows, with the ones typed in), and
        wait until the task is past the question. Returns how many answers it took: Airflow 3.3.2 loses an answer
        given while the scheduler is still handling the exit of the try that parked (it marks that try for retry,
        and the retry asks again), so a person who answers within a second or two is asked a second time."""
        for attempt in range(1, 4):
            detail = self.waiting_hitl(dag_id, run_id, task_id)
            asked_try = self.ti(dag_id, run_id, task_id)["try_number"]
            # Like a person, who reads the request before answering: answer once the scheduler has handled the
            # exit of the process that parked the task (the line it logs for that executor event).
            wait_until(lambda t=asked_try: self._exit_handled(dag_id, run_id, task_id, t), timeout=60, poll_s=0.5,
                       what=f"the scheduler handled the exit of the parked {task_id}")
            fields = {k: (v.get("value") if isinstance(v, dict) else v) for k, v in (detail["params"] or {}).items()}
            self.call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
                      {"chosen_options": [choice], "params_input": {**fields, **(params or {})}})

            def past_the_question(asked_try=asked_try):
                now = self.ti(dag_id, run_id, task_id)
                if now["state"] in ("success", "failed", "skipped", "upstream_failed"):
                    return "done"
                if now["try_number"] > asked_try and now["state"] == "awaiting_input":
                    return "asked again"
                return None
            if wait_until(past_the_question, timeout=120, poll_s=1, what=f"{task_id} past the question") == "done":
                return attempt
        raise AssertionError(f"{dag_id}.{task_id}: the answer was lost three times")

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        entry = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                                 "return_value?deserialize=true")
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: t["state"] for t in tis}

    def scheduled_runs(self, dag_id: str) -> list[dict]:
        """No runs while the DAG is unknown to the API (the dag-processor has not parsed it yet: a 404, seen once
        in CI right after the stack's banner on a busy machine)."""
        found = self.get_or_none(f"/api/v2/dags/{dag_id}/dagRuns?run_type=scheduled&order_by=run_after")
        return found["dag_runs"] if found is not None else []

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                         {"logical_date": None, "conf": conf or {}})["dag_run_id"]


def _login(api_port: int, banner: str, scheduler_log) -> Api:
    password = re.search(r"login: admin / (\S+)", banner).group(1)
    req = urllib.request.Request(f"http://127.0.0.1:{api_port}/auth/token", method="POST",
                                 data=json.dumps({"username": "admin", "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return Api(f"http://127.0.0.1:{api_port}", json.load(r)["access_token"], scheduler_log)


def _late_fanout_answered_skip(api: Api) -> str:
    first = wait_until(lambda: (runs := api.scheduled_runs("delivery_fanout")) and runs[0], timeout=180, poll_s=2,
                       what="a scheduled delivery_fanout run")["dag_run_id"]
    detail = api.waiting_hitl("delivery_fanout", first, "ask_on_call_to_send_late")
    assert detail["options"] == ["Send now", "Skip today"] and detail["defaults"] == ["Skip today"]
    assert "min late" in detail["subject"] and "ops_backfill_delivery" in detail["body"]
    assert api.answer("delivery_fanout", first, "ask_on_call_to_send_late", "Skip today") == 1
    return first


def _check_skipped(api: Api, run_id: str, decided_by: str | None) -> None:
    run = api.finished("delivery_fanout", run_id)
    states = api.states("delivery_fanout", run_id)
    assert run["state"] == "success", (run, states)
    assert states["skip_late_run"] == "success" and states["prepare_send_queue"] == "skipped", states
    assert states["send_shard"] in ("skipped", "upstream_failed") and states["validate_delivery_sla"] == "skipped"
    out = api.xcom("delivery_fanout", run_id, "skip_late_run")
    assert out["sent"] == 0 and out["decided_by"] == decided_by, out


def _bulk_approval_offer(api: Api) -> None:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=5, minutes=30)).date() + dt.timedelta(days=1)
    run_id = api.trigger("nightly_bulk_approval_offer", {"business_date": tomorrow.isoformat()})
    detail = api.waiting_hitl("nightly_bulk_approval_offer", run_id, "offer_bulk_approval_to_approvers")
    assert detail["options"][-1] == "Leave for one-by-one review" and str(tomorrow) in detail["subject"]
    offered = api.xcom("nightly_bulk_approval_offer", run_id, "list_low_risk_pending_packs")
    assert api.answer("nightly_bulk_approval_offer", run_id, "offer_bulk_approval_to_approvers",
                      detail["options"][0], {"reason": "routine sector notes, reviewed in the queue"}) == 1
    run = api.finished("nightly_bulk_approval_offer", run_id)
    assert run["state"] == "success", api.states("nightly_bulk_approval_offer", run_id)
    out = api.xcom("nightly_bulk_approval_offer", run_id, "approve_what_the_approvers_chose")
    assert out["decided_by"] == "admin" and len(out["approved"]) == len(offered["pack_ids"]) > 0, (out, offered)
    event = api.xcom("nightly_bulk_approval_offer", run_id, "announce_newly_approved_packs")
    assert event == {"business_date": str(tomorrow), "approved": len(out["approved"]), "by": "admin"}, event
    # The nightly window consumes the `approved_packs` asset: the scheduler starts it for that date.
    rerun = wait_until(lambda: next((r for r in api.call("GET", "/api/v2/dags/nightly_content_window/dagRuns")
                                     ["dag_runs"] if r["run_type"] == "asset_triggered"), None),
                       timeout=120, poll_s=2, what="an asset-triggered nightly_content_window run")
    assert rerun["dag_run_id"]


def _incident_acknowledged_in_the_ui(api: Api) -> None:
    # The late start's P0 opened an incident; escalation asks for its acknowledgement in the UI.
    # (Its every-5-minutes schedule may have asked already: one run per incident either way.)
    esc = api.trigger("incident_escalation")
    assert api.finished("incident_escalation", esc)["state"] == "success", api.states("incident_escalation", esc)
    assert not api.xcom("incident_escalation", esc, "request_acknowledgement_in_ui")["failed"]
    runs = api.call("GET", "/api/v2/dags/incident_acknowledgement/dagRuns")["dag_runs"]
    assert runs and all(re.fullmatch(r"incident-\d+", r["dag_run_id"]) for r in runs), runs
    run_id = runs[0]["dag_run_id"]
    incident_id = int(run_id.split("-")[1])
    detail = api.waiting_hitl("incident_acknowledgement", run_id, "acknowledge_in_airflow_ui")
    assert detail["options"] == ["Acknowledge", "Acknowledge and resolve", "Leave it escalating"]
    assert api.answer("incident_acknowledgement", run_id, "acknowledge_in_airflow_ui", "Acknowledge",
                      {"note": "looking at the scheduler"}) == 1
    assert api.finished("incident_acknowledgement", run_id)["state"] == "success"
    out = api.xcom("incident_acknowledgement", run_id, "record_acknowledgement")
    assert out["acknowledged"] and out["by"] == "admin" and out["first_acknowledgement"], out
    # A second escalation run does not ask again.
    again = api.trigger("incident_escalation")
    api.finished("incident_escalation", again)
    assert incident_id not in api.xcom("incident_escalation", again, "request_acknowledgement_in_ui")["requested"]
    assert len(api.call("GET", "/api/v2/dags/incident_acknowledgement/dagRuns")["dag_runs"]) == len(runs)


def test_human_decisions_through_the_real_scheduler(tmp_path):
    proc, api_port, _ = start_stack(str(tmp_path / "data"), advisors=40, extra_env={
        "FA_SCHEDULE_DELIVERY_FANOUT": "* * * * *", "FA_FANOUT_MAX_LATE_START_S": "0",
        "FA_FANOUT_LATE_DECISION_TIMEOUT_S": str(DECISION_TIMEOUT_S),
        # The timeout sweep runs this often (default 15 s).
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "3"})
    out = ""
    try:
        out = read_stack_banner(proc, timeout_s=150)
        assert "Stop with Ctrl-C" in out, out
        api = _login(api_port, out, tmp_path / "data" / "logs" / "scheduler.log")
        first = _late_fanout_answered_skip(api)
        _bulk_approval_offer(api)
        _check_skipped(api, first, "admin")
        _incident_acknowledged_in_the_ui(api)

        # The next scheduled run: nobody answers, the scheduler applies the default after the timeout.
        second = wait_until(lambda: next((r["dag_run_id"] for r in api.scheduled_runs("delivery_fanout")
                                          if r["dag_run_id"] != first), None), timeout=150, poll_s=2,
                            what="the next scheduled delivery_fanout run")
        _check_skipped(api, second, None)
        detail = api.hitl("delivery_fanout", second, "ask_on_call_to_send_late")
        assert detail["chosen_options"] == ["Skip today"] and detail["responded_by_user"] is None, detail
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
