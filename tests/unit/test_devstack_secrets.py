"""The dev stack's generated secrets: the JWT signing secret is long enough for HS512 (no InsecureKeyLengthWarning),
and a too-short one left in an older data folder is replaced on the next `make run`."""
import json
import stat
import warnings

from devtools.devstack.env import MIN_JWT_SECRET_BYTES, load_or_create_secrets, new_jwt_secret


def test_generated_jwt_secret_is_at_least_64_bytes_and_random():
    a, b = new_jwt_secret(), new_jwt_secret()
    assert len(a.encode()) >= MIN_JWT_SECRET_BYTES == 64 and a != b


def test_new_data_folder_gets_a_long_jwt_secret(tmp_path):
    values = load_or_create_secrets(tmp_path)
    assert len(values["jwt_secret"].encode()) >= 64
    path = tmp_path / "secrets.json"
    assert json.loads(path.read_text()) == values
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secrets(tmp_path) == values  # stable across runs


def test_short_stored_jwt_secret_is_replaced_and_the_rest_kept(tmp_path):
    path = tmp_path / "secrets.json"
    old = {"whatsapp_token": "sandbox-abc", "app_secret": "s", "verify_token": "v", "jwt_secret": "x" * 43,
           "api_secret_key": "k", "fernet_key": "f"}
    path.write_text(json.dumps(old))
    values = load_or_create_secrets(tmp_path)
    assert len(values["jwt_secret"].encode()) >= 64
    kept = {k: v for k, v in values.items() if k not in ("jwt_secret", "ops_bot_password")}
    assert kept == {k: v for k, v in old.items() if k != "jwt_secret"}
    assert len(values["ops_bot_password"]) >= 20  # an older folder gains the run-notes service user's password
    assert json.loads(path.read_text()) == values  # rewritten, so the next run keeps the new one
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_pyjwt_accepts_the_generated_secret_for_hs512_without_warning():
    import jwt

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        token = jwt.encode({"sub": "admin"}, new_jwt_secret(), algorithm="HS512")
    assert token
