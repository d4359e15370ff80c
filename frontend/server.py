"""The web server: one ASGI app, the composition root of `make run`.

    /healthz     liveness for proxies and Kubernetes probes
    /login, /logout   our login page (frontend/login.py), when users are configured
    /mcp/        the MCP endpoint (mcp_server/), with its own bearer tokens
    /            the Gradio chat (frontend/app.py)

Everything shares one ChatService, so one executor, one warm pool, one set of limits and one
audit log serve the browser and MCP clients alike.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import gradio as gr
import uvicorn
from fastapi import FastAPI

from agent.service import ChatService
from code_mode import surface_index
from executor.host_limits import raise_open_files_limit
from mcp_server import (
    DB_NAME,
    Sandboxes,
    SandboxStore,
    ServiceChats,
    TokenStore,
    build_http_app,
    build_mcp,
    ensure_token,
    first_run_banner,
    mount_mcp,
)
from settings import EXIT_CONFIG, LOCAL_USER, ConfigError, Settings, load_settings, refusal

from .app import CSS, build_app, page_js
from .exposure import check_exposure, exposed_without_login
from .login import LoginLayer, uvicorn_proxy_options
from .users import Authenticator

logger = logging.getLogger(__name__)


def public_url(settings: Settings) -> str:
    """Where people reach the app (APP_PUBLIC_URL behind a proxy), for printed links."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def local_url(settings: Settings) -> str:
    """This process's own address, for calls it makes to itself (the agent in MCP mode)."""
    host = settings.host
    if host in ("0.0.0.0", "", "localhost"):
        host = "127.0.0.1"
    elif host == "::" or ":" in host:
        host = "[::1]" if host == "::" else f"[{host}]"
    return f"http://{host}:{settings.port}"


def build_mcp_app(settings: Settings, service: ChatService, tokens: TokenStore) -> Any:
    """The MCP endpoint over the chat service's executor (same sandboxes, limits and audit)."""
    sandboxes = Sandboxes(
        SandboxStore(settings.data_dir / DB_NAME), service.executor, ServiceChats(service)
    )
    mcp = build_mcp(
        service.executor,
        tokens,
        sandboxes,
        output_limit_chars=settings.tool_output_limit_chars,
        index=surface_index(service.executor),
    )
    extra = [urlsplit(settings.public_url).hostname or ""] if settings.public_url else []
    return build_http_app(mcp, host=settings.host, extra_hosts=[h for h in extra if h])


def build_server(
    settings: Settings,
    service: ChatService,
    login: LoginLayer,
    *,
    tokens: TokenStore | None = None,
) -> FastAPI:
    """The whole app; serve it with uvicorn (see `main`)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.close()  # here, not after uvicorn.run: a SIGTERM never returns there

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    tokens = tokens or TokenStore(settings.data_dir / DB_NAME)
    mount_mcp(app, build_mcp_app(settings, service, tokens))  # before Gradio's "/" mount
    if settings.agent_tools == "mcp":  # a Literal: anything else was refused at load
        service.use_mcp_tools(f"{local_url(settings)}/mcp/", tokens)
    demo = build_app(
        service,
        settings,
        login_required=login.required,
        exposed=exposed_without_login(settings, login_enabled=login.required),
    )
    demo.queue(default_concurrency_limit=16)
    app = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        auth_dependency=login.current_user,
        max_file_size=settings.upload_limit_bytes,
        css=CSS,
        js=page_js(service),
        theme=gr.themes.Soft(),
        footer_links=[],
        show_error=False,
    )
    login.install(app)
    return app


def main() -> int:
    """`make run`: refuse bad settings in words (exit 2, nothing made), else serve until stopped."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        for warning in check_exposure(settings):
            logger.warning("%s", warning)
        authenticator = Authenticator.from_settings(settings)
        authenticator.names()  # reads the users file now: a broken one refuses to start too
    except ConfigError as exc:
        print(refusal(exc), file=sys.stderr)  # noqa: T201 - the CLI's answer
        return EXIT_CONFIG
    raise_open_files_limit()  # a session holds a runner's connection: 1024 would be a ceiling
    service = ChatService(settings)
    login = LoginLayer.from_settings(
        settings,
        authenticator=authenticator,
        audit=service.executor.audit,
        public_prefixes=("/mcp",),
    )
    tokens = TokenStore(settings.data_dir / DB_NAME)
    app = build_server(settings, service, login, tokens=tokens)
    url = public_url(settings)
    if not login.required and (token := ensure_token(tokens, LOCAL_USER)):
        print(first_run_banner(f"{url}/mcp/", token), flush=True)  # noqa: T201 - once, like Jupyter
    logger.info("model: %s; open %s (MCP endpoint %s/mcp/)", service.model.name, url, url)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        **uvicorn_proxy_options(settings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
