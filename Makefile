# Two commands do all the set-up on a fresh machine with Docker:
#   make run    start the app
#   make test   run every test tier (unit, Docker)
# Both create .venv and build the sandbox image when missing or out of date.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test image lint format bench doctor cleanup

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

image: $(STAMP)
	$(PY) -m executor.image build

run: image
	GRADIO_ANALYTICS_ENABLED=False $(PY) -m frontend.server

test: image lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: image
	$(PY) bench/exec_latency.py
	$(PY) bench/agent_overhead.py

doctor: $(STAMP)
	$(PY) -m frontend.cli doctor

cleanup: $(STAMP)
	$(PY) -m frontend.cli cleanup
