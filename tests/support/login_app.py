"""A tiny Gradio app behind the real login layer, served by uvicorn on a free port.

Shared by the HTTP tests (tests/unit/test_login_server.py) and the browser tests. The login
layer's clocks (sessions and throttle) are one FakeClock the test moves forward, so idle
expiry and lock-outs need no sleeping.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI

from executor.audit import AuditLog
from frontend.login import LoginLayer, uvicorn_proxy_options
from frontend.users import Authenticator, UserStore
from settings import load_settings
from tests.support import free_port


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cheap_hasher() -> PasswordHasher:
    """Argon2 with tiny parameters: the same code path, milliseconds instead of 50 ms."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def tiny_blocks() -> gr.Blocks:
    with gr.Blocks(title="login test") as demo:
        gr.Markdown("# Tiny app")
        who = gr.Textbox(label="Logged in as", elem_id="who")
        button = gr.Button("Who am I?")
        gr.Button("Log out", link="/logout")

        def whoami(request: gr.Request) -> str:
            return request.username or ""

        button.click(whoami, None, who, api_name="whoami")
    return demo


@dataclass
class LoginServer:
    url: str
    layer: LoginLayer
    store: UserStore
    clock: FakeClock
    audit_path: Path
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def audit_lines(self) -> list[str]:
        return self.audit_path.read_text().splitlines() if self.audit_path.exists() else []


def serve(
    data_dir: Path,
    *,
    users: dict[str, str],
    plain: Sequence[tuple[str, str]] = (),
    max_failures: int = 3,
    idle_timeout_s: float = 3600.0,
    trusted_proxies: str = "127.0.0.1",
) -> LoginServer:
    settings = dataclasses.replace(
        load_settings({}),
        data_dir=data_dir,
        users_file=data_dir / "users.toml",
        login_max_failures=max_failures,
        session_idle_timeout_s=idle_timeout_s,
        trusted_proxies=trusted_proxies,
    )
    store = UserStore(settings.users_file, cheap_hasher())
    for name, password in users.items():
        store.add(name, password)
    audit_path = data_dir / "audit.jsonl"
    audit = AuditLog(audit_path, max_bytes=1 << 20, backups=1, secrets=[])
    clock = FakeClock()
    layer = LoginLayer.from_settings(
        settings,
        authenticator=Authenticator(store, plain),
        audit=audit,
        public_prefixes=("/mcp",),
        clock=clock,
        monotonic=clock,
    )
    app = FastAPI()

    @app.get("/mcp/ping")
    def ping() -> dict:  # stands in for the MCP endpoint, which has its own tokens
        return {"ok": True}

    app = gr.mount_gradio_app(
        app, tiny_blocks(), path="/", auth_dependency=layer.current_user, footer_links=[]
    )
    layer.install(app)  # after the mount on purpose: our /login and /logout must still win
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **uvicorn_proxy_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="login-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LoginServer(f"http://127.0.0.1:{port}", layer, store, clock, audit_path, server, thread)
