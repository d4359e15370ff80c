"""Command line: the stdio MCP server, and token management.

    python -m mcp_server [--user U]                 # stdio server (what desktop clients launch)
    python -m mcp_server token create NAME [--user U]
    python -m mcp_server token list
    python -m mcp_server token revoke NAME

`main(argv)` serves `mcp-code-executor mcp ...` too; `token_main(argv)` serves
`mcp-code-executor token ...`.

The stdio server runs its own executor, under the app label `<EXECUTOR_APP_LABEL>-stdio` (its
own containers and workspaces, no warm pool): two processes must never drive the same
containers, and the web app may be running at the same time. A chat's sandbox is reachable
through the HTTP endpoint, not over stdio.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from settings import EXIT_CONFIG, LOCAL_USER, ConfigError, Settings, load_settings, refusal

from .tokens import TokenError, TokenStore

logger = logging.getLogger(__name__)

DB_NAME = "mcp.db"  # tokens and MCP sandboxes of the HTTP endpoint, in the data directory
STDIO_DB_NAME = "mcp-stdio.db"  # MCP sandboxes of stdio servers


def token_store(settings: Settings) -> TokenStore:
    return TokenStore(settings.data_dir / DB_NAME)


def token_main(argv: Sequence[str], settings: Settings | None = None) -> int:
    """`token create NAME [--user U]`, `token list`, `token revoke NAME`."""
    parser = argparse.ArgumentParser(prog="mcp-code-executor token")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="make a token (printed once)")
    create.add_argument("name")
    create.add_argument("--user", default=LOCAL_USER, help=f"owner (default {LOCAL_USER!r})")
    sub.add_parser("list", help="list tokens (never their values)")
    revoke = sub.add_parser("revoke", help="delete a token; clients using it get 401")
    revoke.add_argument("name")
    args = parser.parse_args(list(argv))
    settings = settings or load_settings()
    store = token_store(settings)
    try:
        if args.command == "create":
            try:
                token = store.create(args.name, args.user)
            except TokenError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"Token {args.name!r} for user {args.user!r} (shown only now):")
            print(token)
            return 0
        if args.command == "list":
            infos = store.list()
            if not infos:
                print("no tokens")
            for info in infos:
                used = _when(info.last_used) if info.last_used else "never"
                print(f"{info.name}\tuser={info.user}\tcreated={_when(info.created)}\tused={used}")
            return 0
        if store.revoke(args.name):
            print(f"revoked {args.name!r}")
            return 0
        print(f"error: no token named {args.name!r}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _when(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


async def serve_stdio(settings: Settings, user: str) -> None:
    """Run the MCP server on stdin/stdout for `user` until the client closes the pipe."""
    from code_mode import app_executor, surface_index

    from .sandboxes import Sandboxes, SandboxStore
    from .server import build_mcp

    label = f"{settings.executor.app_label}-stdio"
    executor = app_executor(settings, app_label=label, pool_size=0)
    store = SandboxStore(Path(settings.data_dir) / STDIO_DB_NAME)
    try:
        await executor.start()
        mcp = build_mcp(
            executor,
            None,
            Sandboxes(store, executor),
            local_user=user,
            output_limit_chars=settings.tool_output_limit_chars,
            index=surface_index(executor),
        )
        await mcp.run_stdio_async(show_banner=False)
    finally:
        await executor.aclose()
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mcp_server [--user U]` (stdio server) or `python -m mcp_server token ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(refusal(exc), file=sys.stderr)
        return EXIT_CONFIG
    if argv[:1] == ["token"]:
        return token_main(argv[1:], settings)
    parser = argparse.ArgumentParser(
        prog="mcp-code-executor mcp", description="Serve the MCP tools on stdin/stdout."
    )
    parser.add_argument("--user", default=LOCAL_USER, help=f"the caller (default {LOCAL_USER!r})")
    args = parser.parse_args(argv)
    # stdout carries the protocol: logs go to stderr only.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve_stdio(settings, args.user))
    return 0
