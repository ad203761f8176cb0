"""Every threshold, schedule and tunable of the runbooks, in one place.

Two kinds of values live here:
* **Settings** an operator may override per deployment with an environment variable `FA_<NAME>` (for example
  `FA_PENDING_BACKLOG_THRESHOLD=80`): typed fields of `Settings` (pydantic-settings), read when used. Code
  writes `config.PENDING_BACKLOG_THRESHOLD` as before; the module hands out the current value, so a changed
  environment (a worker's, a test's) is seen without re-importing anything, and a bad value fails with the
  variable's name and the reason.
* **Facts** that are not tunable (the time zone, the schedules, the segments, the SEBI disclaimer, connection
  ids): plain module constants.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIMEZONE_NAME = "Asia/Kolkata"
IST = ZoneInfo(TIMEZONE_NAME)

# -- schedules (cron, Asia/Kolkata) -------------------------------------------------------------
SCHEDULE_NIGHTLY_CONTENT_WINDOW = "30 20 * * *"
SCHEDULE_PRE_DELIVERY_CHECK = "50 5 * * *"
# SCHEDULE_DELIVERY_FANOUT is a setting (below): the stack test moves it to see a late *scheduled* run.
SCHEDULES_POST_DELIVERY_REPORT = ("5 6 * * *", "15 6 * * *", "30 6 * * *")
SCHEDULE_WEEKLY_MAINTENANCE = "0 2 * * 0"
SCHEDULE_MONTHLY_MAINTENANCE = "0 1 * * 0#1"  # first Sunday of the month (cron "#" = nth weekday)
SCHEDULE_DAILY_BACKUP = "30 3 * * *"
# Deadline Alerts (minutes after a run's slot): the 05:50 check is done by 05:58, the 06:00 fan-out by 06:05, each
# post-delivery checkpoint five minutes after its slot (the 06:30 report out by 06:35).
DEADLINE_PRE_DELIVERY_CHECK_MIN = 8
DEADLINE_DELIVERY_FANOUT_MIN = 5
DEADLINE_POST_DELIVERY_REPORT_MIN = 5

# -- content and render QC -------------------------------------------------------------------------
SEGMENTS = ("mutual_fund", "equity", "insurance", "wealth")
SEBI_DISCLAIMER = (
    "Investments in securities market are subject to market risks. Read all the related documents "
    "carefully before investing. Registration granted by SEBI and certification from NISM in no way "
    "guarantee performance of the intermediary or provide any assurance of returns to investors."
)
RENDERER_VERSION = "pack-renderer/1"   # part of every render's input hash: bump it to re-render all
# A SEBI disclaimer must carry these phrases (case-insensitive) to count as present.
DISCLAIMER_REQUIRED_PHRASES = ("subject to market risks", "read all the related documents")
REGISTRATION_PATTERN = r"^(ARN-[0-9]{4,8}|IN[AHZ][0-9]{6,9})$"  # AMFI ARN, SEBI RIA/RA/broker

# -- post-delivery ---------------------------------------------------------------------------------
# Failures that need a human now, whatever their count (auth, policy/spam blocks, template disabled).
CRITICAL_ERROR_CODES = (190, 368, 131031, 131048, 132015, 132016)

# -- maintenance -----------------------------------------------------------------------------------
HOT_TABLES = ("deliveries", "delivery_attempts", "webhook_events", "delivery_plan", "pack_assignments", "renders",
              "canary_sends", "sender_leases", "check_results")

# -- Airflow guards --------------------------------------------------------------------------------
# Lanes: (priority_weight, execution_timeout in minutes) of a DAG's tasks. The delivery path wins every contended
# slot; maintenance yields to everything. Timeouts are generous bounds on a hang, not estimates.
LANES = {
    "delivery": (100, 20),      # 05:50 check, fan-out (send_shard has its own, longer bound), SLA
    "incident": (90, 10),       # paging and escalation
    "operator": (60, 30),       # ops_* DAGs
    "reporting": (40, 30),      # 06:05-06:30 checkpoints
    "content": (20, 90),        # the nightly window (render batches, canary wait)
    "maintenance": (1, 180),    # VACUUM, REINDEX, pg_dump, restores, DR drill
}
# Pools: the senders get the executor's slots to themselves; DB-heavy maintenance runs one at a time, so it never
# takes the slots or the database the 06:00 senders need. `make run` and docker-compose's init create them.
POOL_SENDERS = "delivery_senders"
POOL_DB_MAINTENANCE = "db_maintenance"
POOL_DB_MAINTENANCE_SLOTS = 1
# Celery queues (EXECUTOR=celery, docker-compose): send_shard goes to its own queue, served by workers that do
# nothing else, so a slow report or a maintenance task never holds a slot the 06:00 senders need; everything else
# takes Airflow's default queue ([operators] default_queue). LocalExecutor ignores queues.
QUEUE_DELIVERY = "delivery"
QUEUE_DEFAULT = "default"


def pool_definitions(parallelism: int) -> dict:
    """The pools above in `airflow pools import` format, for a deployment whose executor has `parallelism`
    slots (`make run` and docker-compose's init create them before the scheduler starts)."""
    return {
        POOL_SENDERS: {"slots": parallelism, "include_deferred": False,
                       "description": "send_shard tasks of delivery_fanout / ops_backfill_delivery"},
        POOL_DB_MAINTENANCE: {"slots": POOL_DB_MAINTENANCE_SLOTS, "include_deferred": False,
                              "description": "VACUUM/REINDEX, pg_dump, restores, DR drill: one at a time"},
    }

# -- connections -----------------------------------------------------------------------------------
SLACK_CONN_ID = "slack_alerts"
SLACK_APPROVERS_CONN_ID = "slack_approvers"  # compliance approvers' channel (approval backlog)
WHATSAPP_CONN_ID = "whatsapp_cloud"
APP_DB_CONN_ID = "app_db"
# Advisor delay notices (issue 17 §6): the SMTP connection (Airflow's SMTP provider) the emails go through; the
# dev stack and the tests point it at the sandbox's SMTP sink, production at the real relay.
ADVISOR_EMAIL_CONN_ID = "advisor_email"
AI_COMPLIANCE_CONN_ID = "ai_compliance"  # OpenAI-compatible chat completions: host = base URL, password = key

CommaList = Annotated[tuple[str, ...], NoDecode]  # FA_<NAME>=a,b,c (operators' format), not JSON


class Settings(BaseSettings):
    """The tunables, each overridable with `FA_<NAME>`. Defaults are the runbooks' values."""

    model_config = SettingsConfigDict(env_prefix="FA_", case_sensitive=True, extra="ignore", frozen=True,
                                      env_ignore_empty=True)  # FA_X= (empty) means the default, as before

    # -- DAG defaults ----------------------------------------------------------------------------------
    DAG_OWNER: str = "content-delivery-ops"
    DEADLINE_ALERTS: bool = True  # Airflow's Deadline Alerts on the morning DAGs (experimental in Airflow 3.x)
    DEFAULT_RETRIES: int = 2
    DEFAULT_RETRY_DELAY_S: int = 30
    # -- content and approvals -------------------------------------------------------------------------
    PENDING_BACKLOG_THRESHOLD: int = 50
    BULK_APPROVE_MAX_RISK: int = 2
    FALLBACK_ROTATION_DAYS: int = 7
    # -- rendering and render QC (nightly window) ---------------------------------------------------------
    RENDER_WIDTH: int = 1080
    RENDER_HEIGHT: int = 1350
    RENDER_JPEG_QUALITY: int = 85
    RENDER_BATCH_SIZE: int = 2500     # advisors per mapped render task (target)
    MAX_RENDER_TASKS: int = 32         # bound on mapped render tasks, whatever N
    RENDER_WRITE_BATCH: int = 250    # render rows written per transaction
    # WhatsApp accepts JPEG/PNG header images up to 5 MB. Side bounds are our own guard rails: below 300 px
    # the text is unreadable on a phone, above 4096 px clients downscale and the file grows for nothing.
    IMAGE_MAX_BYTES: int = 5 * 1024 * 1024
    IMAGE_MIN_SIDE_PX: int = 300
    IMAGE_MAX_SIDE_PX: int = 4096
    DISCLAIMER_MIN_FONT_PX: int = 18  # legibility floor at 1080 px width
    CANARY_WAIT_S: int = 90           # bound on waiting for delivered evidence
    CANARY_POLL_S: float = 1.0
    # -- delivery ----------------------------------------------------------------------------------------
    SEND_WINDOW_SECONDS: int = 300   # 06:00-06:05
    TOKEN_EXPIRY_WARN_DAYS: int = 7  # the 05:50 check warns this many days before the access token expires
    # A *scheduled* fan-out that starts later than this after 06:00 does not send on its own. With
    # catchup=False Airflow still runs the most recent missed slot when the scheduler comes back (or a stack
    # starts) hours later; a morning pack at 14:00 needs a person's decision: ops_backfill_delivery.
    FANOUT_MAX_LATE_START_S: int = 1800
    # -- human decisions (Airflow human-in-the-loop) ----------------------------------------------------------
    SCHEDULE_DELIVERY_FANOUT: str = "0 6 * * *"  # IST cron of delivery_fanout's slot
    # A late scheduled fan-out asks on-call "send now or skip?"; with no answer by then it sends nothing.
    FANOUT_LATE_DECISION_TIMEOUT_S: int = 1200
    # An open incident's acknowledgement request stays in the UI's Required Actions this long, then lapses
    # (the ladders keep escalating either way; a lapsed request is a timeline entry).
    INCIDENT_ACK_REQUEST_TIMEOUT_MIN: int = 240
    SCHEDULE_BULK_APPROVAL_OFFER: str = "30 21 * * *"  # IST: the approvers' 21:30 bulk-approval choice
    BULK_APPROVAL_OFFER_TIMEOUT_MIN: int = 90          # unanswered by then: nothing is approved in bulk
    # Plan rows get a send offset spread over this much of the window; the rest is headroom for retries.
    JITTER_WINDOW_SECONDS: int = 240
    MAX_SENDER_TASKS: int = 64
    ACCEPTED_SLA_RATIO: float = 0.99
    FAILURE_RATE_PAGE_THRESHOLD: float = 0.02
    FAILURE_RATE_WINDOW_SECONDS: int = 120
    SUCCESS_RATE_FLOOR: float = 0.95
    # -- post-delivery -------------------------------------------------------------------------------------
    DELIVERY_RATE_WARNING: float = 0.95
    DELIVERY_RATE_CRITICAL: float = 0.90
    STUCK_AFTER_MINUTES: int = 15
    DELIVERED_WITHIN_SLO_S: int = 300      # "delivered within 5 minutes"
    DELIVERED_WITHIN_SLO_RATIO: float = 0.95
    RECONCILE_BATCH: int = 20000                  # webhook events per transaction
    WEBHOOK_ORPHAN_AFTER_S: int = 1800     # unmatched status events set aside after
    FAILING_STREAK_DAYS: int = 3              # "advisors failing 3 days in a row"
    REPORT_TREND_DAYS: int = 14
    OPT_OUT_SPIKE_COUNT_5MIN: int = 10
    OPT_OUT_SPIKE_RATIO_LAST_100: float = 0.03
    # -- incident response (runbooks 000/001) ---------------------------------------------------------------
    ESCALATE_SECONDARY_AFTER_MIN: int = 5            # unacknowledged: the secondary is paged after this
    ESCALATE_ENGINEERING_MANAGER_AFTER_MIN: int = 30  # an incident open this long reaches the engineering manager
    ESCALATE_CTO_AFTER_MIN: int = 60                  # ... and the CTO
    POSTMORTEM_DUE_H: int = 24                        # a P0's post-mortem is due (runbook 000)
    POSTMORTEM_DUE_CRITICAL_H: int = 48               # security, compliance, suspension (runbook 001)
    # -- advisor delay notices (issue 17 §6, include/advisor_notices/) ----------------------------------------
    ADVISOR_NOTICE_LATE_AFTER_MIN: int = 15   # a segment with unsent rows this long after the 06:00 slot is late
    ADVISOR_NOTICE_EVERY_MIN: int = 15        # an affected advisor hears again this often while still affected
    # The DAG runs every 5 min and runs start a few seconds apart: a notice is due this much before the full
    # interval, so "every 15 min" does not slip to 20.
    ADVISOR_NOTICE_GRACE_S: int = 60
    ADVISOR_NOTICE_RATE_WINDOW_S: int = 300   # the ETA's send rate: accepted messages over the last 5 min
    ADVISOR_NOTICE_EMAIL_MAX_ATTEMPTS: int = 5  # an email that failed this often stays failed (a P2 says so)
    ADVISOR_STATUS_PAGE_URL: str = ""  # where advisors can read advisor_status.html; empty: no link in notices
    ADVISOR_NOTICE_MESSAGE_ID_DOMAIN: str = "advisor-notices.local"  # right side of the emails' Message-IDs
    # -- AI compliance review (nightly window; runbooks 000 "AI service degradation", 003, 004) ---------------
    AI_REVIEW_ENABLED: bool = True
    AI_REVIEW_MODEL: str = "gpt-4o"             # the main model
    AI_REVIEW_LIGHT_MODEL: str = "gpt-4o-mini"  # what a slow or failing main model degrades to
    AI_REVIEW_COST_PER_1K_TOKENS: float = 0.42        # INR per 1,000 tokens of the main model (our rate card)
    AI_REVIEW_LIGHT_COST_PER_1K_TOKENS: float = 0.05  # INR per 1,000 tokens of the light model
    AI_REVIEW_LATENCY_BASELINE_S: float = 1.5   # runbook 004: compliance engine response < 1.5 s
    AI_REVIEW_LATENCY_FACTOR: float = 2.0       # degrade when the window's median latency exceeds factor x baseline
    AI_REVIEW_MAX_FAILURE_RATE: float = 0.3     # ... or more than this share of its calls failed
    AI_REVIEW_WINDOW_CALLS: int = 10            # the window: a model's last N calls
    AI_REVIEW_MIN_CALLS: int = 3                # calls in the window before latency or failures are judged
    AI_REVIEW_DAILY_TOKEN_CEILING: int = 2_000_000   # tokens per IST day, all models; reached: rules-only
    AI_REVIEW_DAILY_COST_CEILING: float = 500.0      # INR per IST day, all models; reached: rules-only
    AI_REVIEW_CONCURRENCY: int = 4              # calls in flight at once (backpressure)
    AI_REVIEW_BATCH: int = 20                   # packs submitted per batch; the next waits for this one
    AI_REVIEW_TIMEOUT_S: float = 10.0           # per call; a timeout counts as a failure
    AI_REVIEW_MAX_COMPLETION_TOKENS: int = 400
    # -- webhook receiver ------------------------------------------------------------------------------------
    # Largest POST body the receiver reads (413 beyond, before the signature is checked, so nobody can make the
    # api-server buffer more per request). Meta batches up to 1,000 updates in one webhook: 1,000 full status
    # updates (conversation, pricing, biz_opaque_callback_data) measure ~440 KB, failed ones with errors[] ~0.6 MB
    # (tests/unit/test_webhook_receiver_hardening.py), so 3 MiB leaves about 5x headroom for Meta adding fields.
    WEBHOOK_MAX_BODY_BYTES: int = 3 * 1024 * 1024
    WEBHOOK_SECRETS_TTL_S: float = 60.0  # app secret / verify token re-read after
    # Group commit (issue 19, webhook ingest): requests waiting together share one transaction of at most this
    # many events (a larger request is still one transaction of its own).
    WEBHOOK_MAX_BATCH_EVENTS: int = 500
    WEBHOOK_WRITERS: int = 2  # batches committing at once, each on a connection of its own kept between batches
    # -- maintenance ---------------------------------------------------------------------------------------------
    PG_BIN_DIR: str = ""  # pg_dump/pg_restore; empty: PATH (the dev stack points it at the embedded server)
    BACKUP_KEEP_DAILY: int = 7
    BACKUP_KEEP_WEEKLY: int = 4
    RTO_TARGET_S: int = 3600
    RPO_TARGET_S: int = 900
    RETENTION_DAYS: int = 90                 # deliveries and webhook events kept online
    RENDER_RETENTION_DAYS: int = 30   # render-cache objects kept
    ARCHIVE_CHUNK_ROWS: int = 50000
    AIRFLOW_METADATA_RETENTION_DAYS: int = 30
    VACUUM_DEAD_RATIO: float = 0.05      # vacuum a hot table past 5% dead tuples
    REINDEX_MAX_LEAF_DENSITY: float = 60.0  # reindex a B-tree below this density %
    FALLBACK_MAX_AGE_MONTHS: int = 12
    FALLBACK_MAX_USES: int = 50000
    FALLBACK_MIN_FRESH: int = 8           # 7-day rotation needs at least 8
    ADVISORY_DB_URL: str = ""               # e.g. an internal OSV mirror; empty = offline
    # -- storage -------------------------------------------------------------------------------------------
    DATA_ROOT_URL: str = ""  # fsspec URL; empty means file:// under DATA_DIR/objects
    DATA_DIR: str = ""  # local data directory of the dev stack and the tests; empty means .data/ in the project
    # -- sender ----------------------------------------------------------------------------------------------
    SENDER_CLAIM_BATCH: int = 500          # most rows claimed from PostgreSQL at a time (a claim tops up to 0.5 s)
    # Requests a sender keeps open at once. By Little's law a sender at r msg/s holds r x (API latency) requests
    # open, so the window follows both: r x SENDER_IN_FLIGHT_LATENCIES x the mean latency of its last control
    # tick, at least SENDER_MIN_IN_FLIGHT and at most r x SENDER_MAX_IN_FLIGHT_S (full rate while the API
    # answers within about half a second on average). A fixed 32 fed a 400 msg/s number only 125 msg/s once the
    # API took 250 ms, and clipped a 1,000 msg/s number at the sandbox's 30 ms; a window far above the need lets
    # a stall bunch requests into a burst that Meta answers with 130429.
    SENDER_MIN_IN_FLIGHT: int = Field(default=32, gt=0)
    SENDER_IN_FLIGHT_LATENCIES: float = Field(default=2.0, gt=0)
    SENDER_MAX_IN_FLIGHT_S: float = Field(default=1.0, gt=0)
    # One sender process feeds up to this many msg/s of a number: a faster number gets ceil(msg/s / this)
    # processes (at most one per segment group), each with a share of its segment groups. One process feeds
    # ~780 msg/s on this machine (bench.fanout, 1 x 1,000/s, one unit: 0.78 of the ceiling); every extra
    # process adds its own event loop, control lane and start to the same cores.
    SENDER_PROCESS_MPS: int = Field(default=500, gt=0)
    # Senders aim a little under a number's limit: processes' clocks and bursts are not in lockstep. A 130429
    # costs a 10% cut that recovers within a second, so 1% is enough (5 x 80/s, 10k: 0.97 -> 0.956 of the
    # ceiling, 0.99 -> 0.982, no 130429 either way).
    SENDER_RATE_HEADROOM: float = 0.99
    SENDER_MAX_ATTEMPTS: int = 6
    SENDER_CONTROL_TICK_S: float = 0.5  # kill-switch / lease / monitor cadence
    # Senders sharing a number wait at most this long for all their planned peers before sending (start gate).
    SENDER_PEER_START_WAIT_S: float = Field(default=3.0, ge=0, le=30)
    SENDER_NUMBER_CHECK_S: float = 10.0  # how often a sender re-reads quality
    SENDER_HARD_DEADLINE_S: int = 900   # give up (rows stay queued) after this
    # A plan's jitter must end well before the senders' deadline, or its last rows could never be sent (or retried).
    JITTER_DEADLINE_HEADROOM_S: int = 120
    SENDER_STALE_SENDING_S: int = 30    # a 'sending' row older than this is orphaned
    # Unknown outcomes (timeouts after the bytes left, rows a killed sender left 'sending') are settled only from
    # what Meta gives: a status webhook of that attempt means accepted; no webhook means nothing until the
    # webhook watermark (statuses stored for messages accepted at least WATERMARK_MARGIN_S after the unknown
    # send started) proves it was never accepted. A row is never requeued younger than UNKNOWN_RESOLVE_AFTER_S.
    UNKNOWN_RESOLVE_AFTER_S: int = 20
    WEBHOOK_WATERMARK_MARGIN_S: float = 10.0
    # A unit left with only unknown rows waits this long for their webhooks, then reports them and pages.
    UNKNOWN_SETTLE_WAIT_S: float = 30.0
    UNKNOWN_SETTLE_POLL_S: float = 1.0
    # The kill switch has its own poll, apart from the control tick's slow work (Slack, Graph calls).
    SENDER_KILL_SWITCH_POLL_S: float = 0.25
    # Paused time does not use up a unit's deadline; a pause longer than this fails the unit with a P0 and the
    # rows queued (resume, then retry the task or run ops_backfill_delivery).
    SENDER_MAX_PAUSE_S: int = 3600
    SENDER_PROGRESS_LOG_S: float = 5.0  # a sender's progress line in its task log
    # -- spend budget (issue 18 §3; include/delivery/budget.py) ---------------------------------------------
    # INR of WhatsApp charges (status webhooks' pricing x rate_card). 0 disables that budget. At BUDGET_INFO_RATIO
    # an info alert; at 100% the kill switch engages (cause `budget`) and the approvers are paged (P0).
    BUDGET_DAILY_INR: float = Field(default=25000.0, ge=0)     # ~29k marketing messages at ₹0.8631
    BUDGET_MONTHLY_INR: float = Field(default=600000.0, ge=0)
    BUDGET_INFO_RATIO: float = Field(default=0.9, gt=0, le=1)
    BUDGET_CHECK_S: float = Field(default=2.0, gt=0)           # how often each sender's control lane checks
    BUDGET_LEDGER_SETTLE_S: int = Field(default=10, ge=0)      # webhook events re-read until this old (s)
    # -- quality-drop cooldown and volume ramp (issue 18 §1; include/delivery/cooldown.py) -----------------------
    COOLDOWN_HOURS: int = Field(default=48, ge=48, le=72)  # 0% of its share this long after a drop (runbook: 48-72 h)
    COOLDOWN_STEP_PCT: int = Field(default=25, ge=1, le=100)  # share added per healthy (GREEN) day: 25/50/75/100
    # A cover (the hot spare carrying a ramped number's overflow) serves shard <this> + the ramped number's shard.
    COOLDOWN_COVER_SHARD_OFFSET: int = Field(default=100, ge=16, le=30000)
    # Rows a number may carry in a day when it takes overflow; 0: its throughput over the send window.
    COOLDOWN_NUMBER_DAILY_CAPACITY: int = Field(default=0, ge=0)
    COOLDOWN_REVIEW_DAYS: int = Field(default=7, ge=1, le=31)  # the content review covers this many days
    RENDER_PUBLIC_BASE_URL: str = "https://cdn.example.in/packs"

    # -- word lists (comma-separated in the environment) -------------------------------------------------
    # Claims SEBI's advertisement code forbids; matched case-insensitively on word boundaries.
    BANNED_CLAIMS: CommaList = (
        "guaranteed returns", "guaranteed return", "assured returns", "assured return", "risk-free", "risk free",
        "no risk", "zero risk", "100% safe", "double your money", "sure shot", "sure-shot", "capital guaranteed",
        "guaranteed profit", "fixed returns on equity")
    # The internal staff numbers the nightly canary goes to. No default: a real-format number here would message a
    # stranger. Production names its list; `make run` and the tests set the sandbox's research numbers
    # (devtools/devstack/env.py SANDBOX_CANARY_PHONES). Empty means the canary is not sent, with a P1 that says why.
    CANARY_PHONES: CommaList = ()
    OPT_OUT_KEYWORDS: CommaList = ("stop", "stop all", "unsubscribe", "cancel", "end", "quit", "opt out", "optout",
                                   "रोकें", "बंद", "बंद करें", "रुको")
    # Words a short opt-out reply may start with before its keyword ("please stop", "कृपया बंद करें").
    OPT_OUT_POLITE_WORDS: CommaList = ("please", "pls", "plz", "kindly", "कृपया", "प्लीज", "प्लीज़")
    # A reply with one of these words is never an opt-out: "Don't stop the updates", "बंद मत करो".
    OPT_OUT_NEGATIONS: CommaList = ("not", "don't", "dont", "do not", "never", "cannot", "can't", "cant", "won't",
                                    "wont", "didn't", "doesn't", "shouldn't", "मत", "नहीं", "नही", "न")
    # Links in alerts point here; by default where Airflow says its API (and UI) is served.
    UI_BASE_URL: str = Field(default_factory=lambda: os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080"))

    @field_validator("BANNED_CLAIMS", "CANARY_PHONES", "OPT_OUT_KEYWORDS", "OPT_OUT_POLITE_WORDS",
                     "OPT_OUT_NEGATIONS", mode="before")
    @classmethod
    def _comma_list(cls, value):
        if isinstance(value, str):
            value = value.split(",")
        return tuple(str(v).strip() for v in value if str(v).strip())

    @field_validator("OPT_OUT_KEYWORDS", "OPT_OUT_POLITE_WORDS", "OPT_OUT_NEGATIONS")
    @classmethod
    def _casefold(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.casefold() for v in value)

    @property
    def MAX_JITTER_WINDOW_S(self) -> int:
        """A plan's jitter must end well before the senders' deadline, or its last rows could never be sent."""
        return self.SENDER_HARD_DEADLINE_S - self.JITTER_DEADLINE_HEADROOM_S


_cache: tuple[tuple, Settings] | None = None
_RAW_ENV = getattr(os.environ, "_data", None)  # CPython's undecoded store: a snapshot costs ~1 us


def _environment_key() -> tuple:
    """The environment as it is now. Any change re-reads the settings (changes are rare: a test, a worker's
    start); comparing a snapshot is cheap enough for `config.NAME` to be read on every use."""
    return tuple((_RAW_ENV if isinstance(_RAW_ENV, dict) else os.environ).items())


def settings() -> Settings:
    """The current settings: re-read when the environment changed since the last call."""
    global _cache
    key = _environment_key()
    if _cache is None or _cache[0] != key:
        try:
            _cache = (key, Settings())
        except ValidationError as exc:
            problems = "; ".join(f"FA_{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                                 for e in exc.errors())
            raise ValueError(f"bad setting in the environment: {problems}") from None
    return _cache[1]


def __getattr__(name: str):
    """`config.NAME` for a setting returns its current value (PEP 562: called only for names not defined above)."""
    if name.isupper() and (name in Settings.model_fields or name == "MAX_JITTER_WINDOW_S"):
        return getattr(settings(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
