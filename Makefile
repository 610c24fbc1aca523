# The two commands of the README: `make run` (the embedded demo) and `make test` (every test).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install run test test-unit faults lint typecheck bench-webhooks

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

# The whole fault-injection and abuse suite at full scale, on both brokers (under 30 minutes);
# `make test` runs each scenario at small scale. Figures go to faults-results.jsonl.
faults: install
	rm -f faults-results.jsonl
	$(PY) -m pytest tests/faults -m "faults or full_scale" -p no:cacheprovider $(ARGS)
	$(PY) tests/faults/reliability_table.py faults-results.jsonl

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

# Webhook ingestion at 500-3,000 webhooks/s (about 10 minutes; results into BENCHMARKS.md).
bench-webhooks: install
	$(PY) -m bench.webhooks $(ARGS)
