# The two commands of the README: `make run` (the embedded demo) and `make test` (every test).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install run test test-unit faults lint typecheck bench-webhooks bench-reads

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/trackcache dev $(ARGS)

test: install
	$(PY) -m pytest $(ARGS)

test-unit: install
	$(PY) -m pytest -m unit $(ARGS)

# The whole fault-injection and abuse suite: every scenario at full scale on both brokers (the
# small scale is `make test`'s), six at a time, longest first (they mostly wait on timers), then
# schemathesis and the fuzzers with hundreds of examples; aims at under 30 minutes. Figures go to
# faults-results.jsonl and the table in RELIABILITY.md. ARGS="-k ..." picks scenarios (both scales).
FAULTS_PARALLEL ?= 6
faults: install
	rm -f faults-results.jsonl
	status=0; \
	$(PY) -m pytest tests/faults -m "faults or full_scale" -k "not small" -n $(FAULTS_PARALLEL) -p no:cacheprovider $(ARGS) || status=$$?; \
	TRACKCACHE_SCHEMATHESIS_EXAMPLES=300 TRACKCACHE_FUZZ_EXAMPLES=1000 $(PY) -m pytest -n 2 -p no:cacheprovider \
	  tests/integration/test_web_schemathesis.py tests/integration/test_web_webhook_fuzz.py \
	  tests/unit/test_easyparcel_malformed.py $(ARGS) || status=$$?; \
	$(PY) tests/faults/reliability_table.py faults-results.jsonl RELIABILITY.md; \
	exit $$status

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

# Webhook ingestion at 500-3,000 webhooks/s (about 10 minutes; results into BENCHMARKS.md).
bench-webhooks: install
	$(PY) -m bench.webhooks $(ARGS)

# Customer reads against bare Starlette, 1 and 2 web workers, a fixed rate and the embedded mode
# (under 10 minutes; results into BENCHMARKS.md). ARGS="--duration 2 --runs 1" for a quick look.
bench-reads: install
	$(PY) -m bench.reads $(ARGS)
