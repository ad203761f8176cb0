"""Every threshold, schedule and tunable of the runbooks, in one place.

Values can be overridden per deployment with environment variables named FA_<NAME>
(for example FA_PENDING_BACKLOG_THRESHOLD=80); DAG files and include/ read them only from here.
"""
from __future__ import annotations

import os
from zoneinfo import ZoneInfo

TIMEZONE_NAME = "Asia/Kolkata"
IST = ZoneInfo(TIMEZONE_NAME)


def _env(name: str, default, cast):
    raw = os.environ.get(f"FA_{name}")
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable FA_{name} must be {cast.__name__}, got {raw!r}") from exc


def _env_int(name: str, default: int) -> int:
    return _env(name, default, int)


def _env_float(name: str, default: float) -> float:
    return _env(name, default, float)


def _env_str(name: str, default: str) -> str:
    return os.environ.get(f"FA_{name}") or default


# -- schedules (cron, Asia/Kolkata) -------------------------------------------------------------
SCHEDULE_NIGHTLY_CONTENT_WINDOW = "30 20 * * *"
SCHEDULE_PRE_DELIVERY_CHECK = "50 5 * * *"
SCHEDULE_DELIVERY_FANOUT = "0 6 * * *"
SCHEDULES_POST_DELIVERY_REPORT = ("5 6 * * *", "15 6 * * *", "30 6 * * *")
SCHEDULE_WEEKLY_MAINTENANCE = "0 2 * * 0"
SCHEDULE_MONTHLY_MAINTENANCE = "0 1 * * 0#1"  # first Sunday of the month (cron "#" = nth weekday)
SCHEDULE_DAILY_BACKUP = "30 3 * * *"

# -- DAG defaults ----------------------------------------------------------------------------------
DAG_OWNER = _env_str("DAG_OWNER", "content-delivery-ops")
DEFAULT_RETRIES = _env_int("DEFAULT_RETRIES", 2)
DEFAULT_RETRY_DELAY_S = _env_int("DEFAULT_RETRY_DELAY_S", 30)

# -- content and approvals -------------------------------------------------------------------------
SEGMENTS = ("mutual_fund", "equity", "insurance", "wealth")
PENDING_BACKLOG_THRESHOLD = _env_int("PENDING_BACKLOG_THRESHOLD", 50)
BULK_APPROVE_MAX_RISK = _env_int("BULK_APPROVE_MAX_RISK", 2)
FALLBACK_ROTATION_DAYS = _env_int("FALLBACK_ROTATION_DAYS", 7)
SEBI_DISCLAIMER = (
    "Investments in securities market are subject to market risks. Read all the related documents "
    "carefully before investing. Registration granted by SEBI and certification from NISM in no way "
    "guarantee performance of the intermediary or provide any assurance of returns to investors."
)

# -- rendering and render QC (nightly window) ---------------------------------------------------------
RENDERER_VERSION = "pack-renderer/1"   # part of every render's input hash: bump it to re-render all
RENDER_WIDTH = _env_int("RENDER_WIDTH", 1080)
RENDER_HEIGHT = _env_int("RENDER_HEIGHT", 1350)
RENDER_JPEG_QUALITY = _env_int("RENDER_JPEG_QUALITY", 85)
RENDER_BATCH_SIZE = _env_int("RENDER_BATCH_SIZE", 2500)     # advisors per mapped render task (target)
MAX_RENDER_TASKS = _env_int("MAX_RENDER_TASKS", 32)         # bound on mapped render tasks, whatever N
RENDER_WRITE_BATCH = _env_int("RENDER_WRITE_BATCH", 250)    # render rows written per transaction
# WhatsApp accepts JPEG/PNG header images up to 5 MB. Side bounds are our own guard rails: below 300 px
# the text is unreadable on a phone, above 4096 px clients downscale and the file grows for nothing.
IMAGE_MAX_BYTES = _env_int("IMAGE_MAX_BYTES", 5 * 1024 * 1024)
IMAGE_MIN_SIDE_PX = _env_int("IMAGE_MIN_SIDE_PX", 300)
IMAGE_MAX_SIDE_PX = _env_int("IMAGE_MAX_SIDE_PX", 4096)
DISCLAIMER_MIN_FONT_PX = _env_int("DISCLAIMER_MIN_FONT_PX", 18)  # legibility floor at 1080 px width
# A SEBI disclaimer must carry these phrases (case-insensitive) to count as present.
DISCLAIMER_REQUIRED_PHRASES = ("subject to market risks", "read all the related documents")
# Claims SEBI's advertisement code forbids; matched case-insensitively on word boundaries.
BANNED_CLAIMS = tuple(
    k.strip() for k in _env_str(
        "BANNED_CLAIMS", "guaranteed returns,guaranteed return,assured returns,assured return,risk-free,risk free,"
        "no risk,zero risk,100% safe,double your money,sure shot,sure-shot,capital guaranteed,"
        "guaranteed profit,fixed returns on equity"
    ).split(",") if k.strip()
)
REGISTRATION_PATTERN = r"^(ARN-[0-9]{4,8}|IN[AHZ][0-9]{6,9})$"  # AMFI ARN, SEBI RIA/RA/broker
# The internal staff numbers the nightly canary goes to. No default: a real-format number here would message a
# stranger. Production names its list; `make run` and the tests set the sandbox's research numbers
# (devtools/devstack/env.py SANDBOX_CANARY_PHONES). Empty means the canary is not sent, with a P1 that says why.
CANARY_PHONES = tuple(p.strip() for p in _env_str("CANARY_PHONES", "").split(",") if p.strip())
CANARY_WAIT_S = _env_int("CANARY_WAIT_S", 90)           # bound on waiting for delivered evidence
CANARY_POLL_S = _env_float("CANARY_POLL_S", 1.0)

# -- delivery ----------------------------------------------------------------------------------------
SEND_WINDOW_SECONDS = _env_int("SEND_WINDOW_SECONDS", 300)   # 06:00-06:05
# A *scheduled* fan-out that starts later than this after 06:00 does not send on its own. With
# catchup=False Airflow still runs the most recent missed slot when the scheduler comes back (or a stack
# starts) hours later; a morning pack at 14:00 needs a person's decision: ops_backfill_delivery.
FANOUT_MAX_LATE_START_S = _env_int("FANOUT_MAX_LATE_START_S", 1800)
# Plan rows get a send offset spread over this much of the window; the rest is headroom for retries.
JITTER_WINDOW_SECONDS = _env_int("JITTER_WINDOW_SECONDS", 240)
MAX_SENDER_TASKS = _env_int("MAX_SENDER_TASKS", 64)
ACCEPTED_SLA_RATIO = _env_float("ACCEPTED_SLA_RATIO", 0.99)
FAILURE_RATE_PAGE_THRESHOLD = _env_float("FAILURE_RATE_PAGE_THRESHOLD", 0.02)
FAILURE_RATE_WINDOW_SECONDS = _env_int("FAILURE_RATE_WINDOW_SECONDS", 120)
SUCCESS_RATE_FLOOR = _env_float("SUCCESS_RATE_FLOOR", 0.95)

# -- post-delivery -------------------------------------------------------------------------------------
DELIVERY_RATE_WARNING = _env_float("DELIVERY_RATE_WARNING", 0.95)
DELIVERY_RATE_CRITICAL = _env_float("DELIVERY_RATE_CRITICAL", 0.90)
STUCK_AFTER_MINUTES = _env_int("STUCK_AFTER_MINUTES", 15)
DELIVERED_WITHIN_SLO_S = _env_int("DELIVERED_WITHIN_SLO_S", 300)      # "delivered within 5 minutes"
DELIVERED_WITHIN_SLO_RATIO = _env_float("DELIVERED_WITHIN_SLO_RATIO", 0.95)
RECONCILE_BATCH = _env_int("RECONCILE_BATCH", 20000)                  # webhook events per transaction
WEBHOOK_ORPHAN_AFTER_S = _env_int("WEBHOOK_ORPHAN_AFTER_S", 1800)     # unmatched status events set aside after
FAILING_STREAK_DAYS = _env_int("FAILING_STREAK_DAYS", 3)              # "advisors failing 3 days in a row"
REPORT_TREND_DAYS = _env_int("REPORT_TREND_DAYS", 14)
# Failures that need a human now, whatever their count (auth, policy/spam blocks, template disabled).
CRITICAL_ERROR_CODES = (190, 368, 131031, 131048, 132015, 132016)
OPT_OUT_SPIKE_COUNT_5MIN = _env_int("OPT_OUT_SPIKE_COUNT_5MIN", 10)
OPT_OUT_SPIKE_RATIO_LAST_100 = _env_float("OPT_OUT_SPIKE_RATIO_LAST_100", 0.03)
OPT_OUT_KEYWORDS = tuple(
    k.strip().casefold() for k in _env_str(
        "OPT_OUT_KEYWORDS", "stop,stop all,unsubscribe,cancel,end,quit,opt out,optout,रोकें,बंद,बंद करें,रुको"
    ).split(",") if k.strip()
)
# Words a short opt-out reply may start with before its keyword ("please stop", "कृपया बंद करें").
OPT_OUT_POLITE_WORDS = tuple(
    k.strip().casefold() for k in _env_str(
        "OPT_OUT_POLITE_WORDS", "please,pls,plz,kindly,कृपया,प्लीज,प्लीज़"
    ).split(",") if k.strip()
)
# A reply with one of these words is never an opt-out: "Don't stop the updates", "बंद मत करो".
OPT_OUT_NEGATIONS = tuple(
    k.strip().casefold() for k in _env_str(
        "OPT_OUT_NEGATIONS", "not,don't,dont,do not,never,cannot,can't,cant,won't,wont,didn't,doesn't,"
        "shouldn't,मत,नहीं,नही,न"
    ).split(",") if k.strip()
)
# -- webhook receiver ------------------------------------------------------------------------------------
# Largest POST body the receiver reads (413 beyond, before the signature is checked, so nobody can make the
# api-server buffer more per request). Meta batches up to 1,000 updates in one webhook: 1,000 full status
# updates (conversation, pricing, biz_opaque_callback_data) measure ~440 KB, failed ones with errors[] ~0.6 MB
# (tests/unit/test_webhook_receiver_hardening.py), so 3 MiB leaves about 5x headroom for Meta adding fields.
WEBHOOK_MAX_BODY_BYTES = _env_int("WEBHOOK_MAX_BODY_BYTES", 3 * 1024 * 1024)
WEBHOOK_SECRETS_TTL_S = _env_float("WEBHOOK_SECRETS_TTL_S", 60.0)  # app secret / verify token re-read after

# -- maintenance ---------------------------------------------------------------------------------------------
PG_BIN_DIR = _env_str("PG_BIN_DIR", "")                         # pg_dump/pg_restore; default: embedded wheel, PATH
BACKUP_KEEP_DAILY = _env_int("BACKUP_KEEP_DAILY", 7)
BACKUP_KEEP_WEEKLY = _env_int("BACKUP_KEEP_WEEKLY", 4)
RTO_TARGET_S = _env_int("RTO_TARGET_S", 3600)
RPO_TARGET_S = _env_int("RPO_TARGET_S", 900)
RETENTION_DAYS = _env_int("RETENTION_DAYS", 90)                 # deliveries and webhook events kept online
RENDER_RETENTION_DAYS = _env_int("RENDER_RETENTION_DAYS", 30)   # render-cache objects kept
ARCHIVE_CHUNK_ROWS = _env_int("ARCHIVE_CHUNK_ROWS", 50000)
AIRFLOW_METADATA_RETENTION_DAYS = _env_int("AIRFLOW_METADATA_RETENTION_DAYS", 30)
VACUUM_DEAD_RATIO = _env_float("VACUUM_DEAD_RATIO", 0.05)      # vacuum a hot table past 5% dead tuples
REINDEX_MAX_LEAF_DENSITY = _env_float("REINDEX_MAX_LEAF_DENSITY", 60.0)  # reindex a B-tree below this density %
HOT_TABLES = ("deliveries", "delivery_attempts", "webhook_events", "delivery_plan", "pack_assignments", "renders",
              "canary_sends", "sender_leases", "check_results")
FALLBACK_MAX_AGE_MONTHS = _env_int("FALLBACK_MAX_AGE_MONTHS", 12)
FALLBACK_MAX_USES = _env_int("FALLBACK_MAX_USES", 50000)
FALLBACK_MIN_FRESH = _env_int("FALLBACK_MIN_FRESH", 8)           # 7-day rotation needs at least 8
ADVISORY_DB_URL = _env_str("ADVISORY_DB_URL", "")               # e.g. an internal OSV mirror; empty = offline

# -- alerting ------------------------------------------------------------------------------------------
SLACK_CONN_ID = "slack_alerts"
SLACK_APPROVERS_CONN_ID = "slack_approvers"  # compliance approvers' channel (approval backlog)
WHATSAPP_CONN_ID = "whatsapp_cloud"
APP_DB_CONN_ID = "app_db"
UI_BASE_URL = _env_str("UI_BASE_URL", os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080"))

# -- storage -------------------------------------------------------------------------------------------
DATA_ROOT_URL = _env_str("DATA_ROOT_URL", "")  # fsspec URL; empty means file:// under .data/

# -- sender ----------------------------------------------------------------------------------------------
SENDER_CLAIM_BATCH = _env_int("SENDER_CLAIM_BATCH", 200)          # rows claimed from PostgreSQL at a time
SENDER_MAX_IN_FLIGHT = _env_int("SENDER_MAX_IN_FLIGHT", 32)       # concurrent requests per sender
# A number at least this fast gets one sender process per segment group (one process cannot feed it).
SENDER_SPLIT_MPS = _env_int("SENDER_SPLIT_MPS", 300)
# Senders aim a little under a number's limit: processes' clocks and bursts are not in lockstep. A 130429
# costs a 10% cut that recovers within a second, so 1% is enough (5 x 80/s, 10k: 0.97 -> 0.956 of the
# ceiling, 0.99 -> 0.982, no 130429 either way).
SENDER_RATE_HEADROOM = _env_float("SENDER_RATE_HEADROOM", 0.99)
SENDER_MAX_ATTEMPTS = _env_int("SENDER_MAX_ATTEMPTS", 6)
SENDER_CONTROL_TICK_S = _env_float("SENDER_CONTROL_TICK_S", 0.5)  # kill-switch / lease / monitor cadence
SENDER_NUMBER_CHECK_S = _env_float("SENDER_NUMBER_CHECK_S", 10.0)  # how often a sender re-reads quality
SENDER_HARD_DEADLINE_S = _env_int("SENDER_HARD_DEADLINE_S", 900)   # give up (rows stay queued) after this
# A plan's jitter must end well before the senders' deadline, or its last rows could never be sent (or retried).
JITTER_DEADLINE_HEADROOM_S = _env_int("JITTER_DEADLINE_HEADROOM_S", 120)
MAX_JITTER_WINDOW_S = SENDER_HARD_DEADLINE_S - JITTER_DEADLINE_HEADROOM_S
SENDER_STALE_SENDING_S = _env_int("SENDER_STALE_SENDING_S", 30)    # a 'sending' row older than this is orphaned
# Unknown outcomes (timeouts after the bytes left, rows a killed sender left 'sending') are settled only from
# what Meta gives: a status webhook of that attempt means accepted; no webhook means nothing until the
# webhook watermark (statuses stored for messages accepted at least WATERMARK_MARGIN_S after the unknown
# send started) proves it was never accepted. A row is never requeued younger than UNKNOWN_RESOLVE_AFTER_S.
UNKNOWN_RESOLVE_AFTER_S = _env_int("UNKNOWN_RESOLVE_AFTER_S", 20)
WEBHOOK_WATERMARK_MARGIN_S = _env_float("WEBHOOK_WATERMARK_MARGIN_S", 10.0)
# A unit left with only unknown rows waits this long for their webhooks, then reports them and pages.
UNKNOWN_SETTLE_WAIT_S = _env_float("UNKNOWN_SETTLE_WAIT_S", 30.0)
UNKNOWN_SETTLE_POLL_S = _env_float("UNKNOWN_SETTLE_POLL_S", 1.0)
# The kill switch has its own poll, apart from the control tick's slow work (Slack, Graph calls).
SENDER_KILL_SWITCH_POLL_S = _env_float("SENDER_KILL_SWITCH_POLL_S", 0.25)
# Paused time does not use up a unit's deadline; a pause longer than this fails the unit with a P0 and the
# rows queued (resume, then retry the task or run ops_backfill_delivery).
SENDER_MAX_PAUSE_S = _env_int("SENDER_MAX_PAUSE_S", 3600)
SENDER_PROGRESS_LOG_S = _env_float("SENDER_PROGRESS_LOG_S", 5.0)  # a sender's progress line in its task log
RENDER_PUBLIC_BASE_URL = _env_str("RENDER_PUBLIC_BASE_URL", "https://cdn.example.in/packs")
