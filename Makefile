# Two commands do all the set-up on a fresh machine with Docker:
#   make run    start the app
#   make test   run every test tier (unit, Docker)
# Both create .venv and build the sandbox image when missing or out of date.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test image lint format bench clean-sandboxes

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

image: $(STAMP)
	$(PY) -m executor.image build

run: image
	GRADIO_ANALYTICS_ENABLED=False $(PY) -m frontend.app

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

clean-sandboxes: $(STAMP)
	$(PY) -m executor.shell --cleanup
