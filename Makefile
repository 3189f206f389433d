# Everything a fresh machine needs comes from here: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PKGS   := libs/contracts libs/expressions libs/platform services/api-gateway services/orchestrator services/step-runner services/scheduler
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit test-integration test-e2e bench clean-data fuzz load test-faults

$(STAMP): requirements.lock $(foreach p,$(PKGS),$(p)/pyproject.toml)
	@# bubblewrap isolates script steps when present (docs/step-runner.md); best effort, never required
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

# A private temp dir per run: the embedded Postgres keeps its data there, and another pytest
# session on the same machine must not be able to reset it under us.
test: $(STAMP)
	@d=$$(mktemp -d /tmp/wf-test-XXXXXX); $(PY) -m pytest -q -p no:cacheprovider --basetemp=$$d tests; rc=$$?; \
	  rm -rf $$d; exit $$rc

# The fault scenarios at full size (tests/faults: 200 runs in flight, about a minute of faults each,
# see the module docstrings); prints one summary line per scenario. WF_FAULTS_RESULTS=<file> also
# appends each scenario's numbers to <file> as JSON lines. The temp dir (service logs) is kept on failure.
test-faults: $(STAMP)
	@d=$$(mktemp -d /tmp/wf-faults-XXXXXX); WF_FAULTS_SCALE=full $(PY) -m pytest -q -s -p no:cacheprovider \
	  --basetemp=$$d tests/faults; rc=$$?; \
	  if [ $$rc = 0 ]; then rm -rf $$d; else echo "logs kept in $$d"; fi; exit $$rc

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

test-e2e: $(STAMP)
	$(PY) -m pytest -q tests/e2e

# A longer schemathesis pass than the one in `make test`, with a fresh random seed (it prints it).
fuzz: $(STAMP)
	WF_FUZZ_MAX_EXAMPLES=200 WF_FUZZ_SEED=random $(PY) -m pytest -q -s tests/e2e/test_api_fuzz.py

bench: $(STAMP)
	$(PY) bench/run.py

# Against `make run` (gateway :8080, key from .data/dev-api-key): holds LOAD_RATE runs/s for
# LOAD_DURATION s of a small built-in workflow and prints throughput, p50/p99 and errors
# (docs/load.md). More flags through LOAD_ARGS, e.g. LOAD_ARGS="--url http://host:8080 --json out.json".
LOAD_RATE     ?= 10
LOAD_DURATION ?= 30
load: $(STAMP)
	$(VENV)/bin/wfctl load --rate $(LOAD_RATE) --duration $(LOAD_DURATION) $(LOAD_ARGS)

clean-data:
	rm -rf .data
