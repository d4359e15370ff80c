"""The web server: one ASGI app, the composition root of `make run`.

    /healthz     liveness for proxies and Kubernetes probes
    /login, /logout   our login page (frontend/login.py), when users are configured
    /mcp/        the MCP endpoint (mcp_server/), with its own bearer tokens
    /            the Gradio chat (frontend/app.py)

Everything shares one ChatService, so one executor, one warm pool, one set of limits and one
audit log serve the browser and MCP clients alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from agent.service import ChatService
from settings import ConfigError, Settings, load_settings

from .app import CSS, build_app
from .exposure import check_exposure, exposed_without_login
from .login import LoginLayer, uvicorn_proxy_options

logger = logging.getLogger(__name__)

Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[None]]


def build_server(
    settings: Settings,
    service: ChatService,
    login: LoginLayer,
    *,
    mcp_app: Any = None,
    mcp_lifespan: Lifespan | None = None,
) -> FastAPI:
    """The whole app; serve it with uvicorn (see `main`)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if mcp_lifespan is not None:  # else every MCP call fails: task group not started
                await stack.enter_async_context(mcp_lifespan(app))
            yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if mcp_app is not None:

        @app.api_route("/mcp", methods=["GET", "POST", "DELETE"], include_in_schema=False)
        async def mcp_slash() -> RedirectResponse:
            return RedirectResponse("/mcp/", status_code=307)

        app.mount("/mcp", mcp_app)  # before Gradio: the mount at "/" would catch it

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
        theme=gr.themes.Soft(),
        footer_links=[],
        show_error=False,
    )
    login.install(app)
    return app


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        for warning in check_exposure(settings):
            logger.warning("%s", warning)
    except ConfigError as exc:
        print(f"Refusing to start: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's answer
        return 2
    service = ChatService(settings)
    login = LoginLayer.from_settings(
        settings, audit=service.executor.audit, public_prefixes=("/mcp",)
    )
    app = build_server(settings, service, login)
    logger.info("model: %s; open http://%s:%d", service.model.name, settings.host, settings.port)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            **uvicorn_proxy_options(settings),
        )
    finally:
        asyncio.run(service.close())
    return 0


if __name__ == "__main__":
    sys.exit(main())
