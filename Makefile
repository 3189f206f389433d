# Everything a fresh machine needs comes from here: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PKGS   := libs/contracts libs/expressions libs/platform services/api-gateway services/orchestrator services/step-runner services/scheduler
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit test-integration test-e2e bench clean-data

$(STAMP): requirements.lock $(foreach p,$(PKGS),$(p)/pyproject.toml)
	@# bubblewrap isolates script steps when present (docs/sandbox.md); best effort, never required
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
		  apt-get install -y -q bubblewrap >/dev/null 2>&1; }; } || echo "bubblewrap not installed: scripts run with rlimits only"; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check "setuptools>=68" wheel
	$(PIP) install -q --disable-pip-version-check -r requirements.lock
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation $(foreach p,$(PKGS),-e $(p))
	touch $(STAMP)

install: $(STAMP)

# Starts Postgres + NATS (embedded, data under .data/) unless DATABASE_URL / NATS_URL are set,
# then all four services; prints the gateway URL. Ctrl-C stops everything.
run: $(STAMP)
	$(VENV)/bin/wf-dev

test: $(STAMP)
	$(PY) -m pytest -q tests

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

test-e2e: $(STAMP)
	$(PY) -m pytest -q tests/e2e

bench: $(STAMP)
	$(PY) bench/run.py

clean-data:
	rm -rf .data
