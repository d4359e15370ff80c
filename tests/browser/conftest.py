"""The real app (offline model, real Docker) served in-process; Debian's Chromium via Playwright."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from settings import ExecutorSettings, load_settings
from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start_app(app_label: str, data_dir: Path, **overrides):
    """Serve the real app on a free port; returns (url, service, demo)."""
    from agent.service import ChatService
    from frontend.app import build_app, launch_kwargs

    base = load_settings({})  # hermetic: no .env, no API key -> the offline model
    settings = dataclasses.replace(
        base,
        executor=ExecutorSettings(
            app_label=app_label,
            pool_size=0,
            state_dir=data_dir / "executor",
            audit_log=data_dir / "audit.jsonl",
        ),
        data_dir=data_dir,
        port=free_port(),
        **overrides,
    )
    service = ChatService(settings)
    demo = build_app(service, settings)
    demo.queue(default_concurrency_limit=16).launch(
        prevent_thread_lock=True, quiet=True, **launch_kwargs(settings)
    )
    return f"http://127.0.0.1:{settings.port}/", service, demo


@pytest.fixture(scope="module")
def app(docker_client, app_label, tmp_path_factory):
    url, service, demo = start_app(
        f"{app_label}-ui",
        tmp_path_factory.mktemp("ui-data"),
        upload_limit_bytes=100_000,
        tab_close_grace_s=1.0,
    )
    yield url, service
    demo.close()
    service.executor.cleanup_all(remove_volumes=True)


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
