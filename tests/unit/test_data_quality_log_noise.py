"""Great Expectations' import-time chatter stays out of the task log; our own messages stay in."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = r'''
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s|%(levelname)s|%(message)s")
import pandas as pd
from include.reporting import data_quality as dq
logging.getLogger("include.reporting.data_quality").info("our own message")
df = pd.DataFrame({"advisor_id": [1], "outcome_rows": [1], "planned": [True], "status": ["delivered"], "wamid": ["w"],
                   "accepted_sends": [1], "accepted_to_delivered_s": [1.0], "delivered_to_read_s": [None],
                   "error_code_matches_status": [True], "sent_to_dnc_or_opted_out": [False], "accepted_at": [None],
                   "delivered_at": [None], "read_at": [None], "error_code": [None], "dnc_source": [None]})
print("RESULT|", dq.validate({"outcomes": df, "kpis": pd.DataFrame({"advisor_id": [0], "delivery_rate": [1.0]})})["success"])
'''


def test_a_validation_logs_at_most_a_line_of_great_expectations_at_info():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    gx_info = [line for line in lines if line.startswith("great_expectations") and "|INFO|" in line]
    assert len(gx_info) <= 1, gx_info[:5]  # was 214 ("Skipping registering function ...")
    assert "include.reporting.data_quality|INFO|our own message" in lines
    assert "RESULT| True" in lines
