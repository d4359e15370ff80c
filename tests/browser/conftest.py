"""The real app (offline model, real Docker) served in-process; Debian's Chromium via Playwright."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from settings import PROJECT_ROOT, ExecutorSettings, load_settings
from tests.conftest import IN_CI
from tests.support import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API holds an event loop that asyncio tests must not see."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@dataclass
class ServedApp:
    url: str
    service: Any
    server: Any
    thread: threading.Thread

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_app(app_label: str, data_dir: Path, **overrides) -> ServedApp:
    """Serve the real app (frontend.server: login layer, Gradio) with uvicorn on a free port."""
    import uvicorn

    from agent.service import ChatService
    from frontend.login import LoginLayer
    from frontend.server import build_server

    base = load_settings({})  # hermetic: no .env, no API key -> the offline model
    settings = dataclasses.replace(
        base,
        executor=ExecutorSettings(
            app_label=app_label,
            pool_size=0,
            max_live_sessions=0,  # many chats of one local user across the module's tests
            state_dir=data_dir / "executor",
            audit_log=data_dir / "audit.jsonl",
        ),
        data_dir=data_dir,
        users_file=data_dir / "users.toml",
        port=free_port(),
        **overrides,
    )
    service = ChatService(settings)
    login = LoginLayer.from_settings(
        settings, audit=service.executor.audit, public_prefixes=("/mcp",)
    )
    config = uvicorn.Config(
        build_server(settings, service, login),
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="app-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    return ServedApp(f"http://127.0.0.1:{settings.port}/", service, server, thread)


def demo_servers_file(data_dir: Path) -> Path:
    """The sample MCP servers (samples/mcp_servers.json) with absolute paths, this interpreter
    for our own demo servers, and the CRM's file in `data_dir` (never the project's data/)."""
    servers = json.loads((PROJECT_ROOT / "samples" / "mcp_servers.json").read_text())
    for name, entry in servers["mcpServers"].items():
        if entry["command"] == ".venv/bin/python":
            entry["command"] = sys.executable
        else:
            entry["command"] = str(PROJECT_ROOT / entry["command"])
        entry["args"] = [str(PROJECT_ROOT / a) for a in entry.get("args", [])]
        if name == "crm":
            entry["env"] = {"CRM_DATA_FILE": str(data_dir / "crm.json")}
    path = data_dir / "mcp_servers.json"
    path.write_text(json.dumps(servers))
    return path


@pytest.fixture(scope="module")
def app(docker_client, app_label, tmp_path_factory):
    data = tmp_path_factory.mktemp("ui-data")
    served = start_app(
        f"{app_label}-ui",
        data,
        upload_limit_bytes=100_000,
        tab_close_grace_s=1.0,
        mcp_servers_file=demo_servers_file(data),
    )
    yield served.url, served.service
    served.close()
    served.service.executor.cleanup_all(remove_volumes=True)


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
