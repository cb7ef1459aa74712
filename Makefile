# Thin wrappers around scripts/dev.py, which does the real set-up work.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8099
FHIR_PORT ?= 8090

.PHONY: run test setup bench lint unit fhir
run:
	$(PYTHON) scripts/dev.py run --host $(HOST) --port $(PORT)

test:
	$(PYTHON) scripts/dev.py test

# ruff (lint and format check) and mypy, as the test command runs them first
lint:
	$(PYTHON) scripts/dev.py lint

# the fast tests: no FHIR server, PostgreSQL, browser or fault suites
unit:
	$(PYTHON) scripts/dev.py unit

# the bundled FHIR test server on 127.0.0.1:$(FHIR_PORT) with the demo patients dated for today; Ctrl-C stops it
fhir:
	$(PYTHON) scripts/dev.py fhir --port $(FHIR_PORT)

setup:
	$(PYTHON) scripts/dev.py setup

# Latency/throughput benchmark of the service as run in production; e.g. make bench BENCH_ARGS=--quick
bench:
	$(PYTHON) scripts/bench.py $(BENCH_ARGS)
