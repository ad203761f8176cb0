"""ASGI entry for the receiver benchmark: the same app the api-server plugin serves, bound to the
benchmark's database and secrets from the environment (uvicorn bench.receiver_app:app)."""
import os

from include.core.db import get_engine
from include.whatsapp.webhook_receiver import ReceiverSecrets, create_app

app = create_app(lambda: get_engine(os.environ["FA_BENCH_DB_URL"]),
                 lambda: ReceiverSecrets(os.environ["FA_BENCH_APP_SECRET"], "bench"))
