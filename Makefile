# Two commands do all the set-up on a fresh machine with Docker:
#   make run    start the app
#   make test   run every test tier (unit, Docker, Kubernetes against its API double)
#   make test-k8s  the Kubernetes exec tier against the cluster KUBECONFIG names (docs/kubernetes.md)
# Both create .venv and build the sandbox image when missing or out of date.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-k8s image lint format bench doctor cleanup mcp-servers

# Real MCP servers for code mode's tests and the demo, pinned, in a folder of their own
# (gitignored): a venv with the official Python reference servers, and the npm one. The stamp's
# name carries the pins, so changing one installs again.
MCP_SERVERS := .mcp-servers
MCP_PY_PINS := mcp-server-time==2026.10.19 mcp-server-git==2026.10.19
MCP_NPM_PIN := @modelcontextprotocol/server-everything@2026.8.31
MCP_STAMP := $(MCP_SERVERS)/.installed-time-git-2026.10.19-everything-2026.8.31

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

image: $(STAMP)
	$(PY) -m executor.image build

$(MCP_STAMP):
	rm -rf $(MCP_SERVERS)/py $(MCP_SERVERS)/node $(MCP_SERVERS)/.installed-*
	$(PYTHON) -m venv $(MCP_SERVERS)/py
	$(MCP_SERVERS)/py/bin/pip install --quiet $(MCP_PY_PINS)
	npm install --silent --no-audit --no-fund --prefix $(MCP_SERVERS)/node $(MCP_NPM_PIN)
	touch $@

mcp-servers: $(MCP_STAMP)

run: image mcp-servers
	@[ -e data/mcp_servers.json ] || { mkdir -p data && cp samples/mcp_servers.json data/mcp_servers.json \
		&& echo "[make] data/mcp_servers.json: the demo MCP servers (docs, crm, time); add yours there"; }
	GRADIO_ANALYTICS_ENABLED=False $(PY) -m frontend.cli run  # settings first: a refusal comes at once

test: image lint mcp-servers
	$(PY) -m pytest

# The executor's integration cases (their [kubernetes] variants) and the Kubernetes-specific
# ones on a real cluster: KUBECONFIG
# (and EXECUTOR_K8S_CONTEXT) name it, EXECUTOR_K8S_NAMESPACE a namespace you may use, and
# EXECUTOR_IMAGE_NAME the baked sandbox image, pushed where the nodes pull from.
test-k8s: $(STAMP)
	EXECUTOR_ENGINE=kubernetes $(PY) -m pytest -m kubernetes \
		tests/integration tests/kubernetes/test_exec_websocket.py

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
