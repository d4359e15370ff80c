"""A small interactive shell over the executor (what `make run` starts until the chat UI exists).

Each line runs as a bash command in the sandbox of one session. Lines starting with `:` are
executor operations: `:read PATH [OFFSET [COUNT]]`, `:write PATH TEXT`, `:ls [PATH]`, `:tools`,
`:doc MODULE FUNCTION`, `:session NAME`, `:quit`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import sys

from settings import load_settings

from .client import DockerExecutionClient
from .errors import ExecutorError


async def _handle(client: DockerExecutionClient, session: str, line: str) -> str | None:
    if not line.startswith(":"):
        result = await client.run(session, line, timeout=60)
        parts = [
            result.stdout.rstrip("\n"),
            result.stderr.rstrip("\n"),
            f"[exit {result.exit_code}, {result.duration_s * 1000:.0f} ms]",
        ]
        return "\n".join(p for p in parts if p)
    words = shlex.split(line[1:])
    verb, args = (words[0], words[1:]) if words else ("", [])
    if verb == "read":
        numbers = [int(a) for a in args[1:3]]
        return await client.read_file(session, args[0], *numbers)
    if verb == "write":
        await client.write_file(session, args[0], " ".join(args[1:]) + "\n")
        return f"wrote {args[0]}"
    if verb == "ls":
        entries = await client.list_files(session, args[0] if args else "/workspace")
        return "\n".join(f"{e.size:>10}  {e.path}{'/' if e.is_dir else ''}" for e in entries)
    if verb == "tools":
        return "\n".join(
            f"{t.module}.{t.signature}  # {t.summary}" for t in await client.list_tools()
        )
    if verb == "doc":
        return await client.read_docstring(args[0], args[1])
    return f"unknown command :{verb}; see the help above"


async def _repl(client: DockerExecutionClient, session: str) -> None:
    print(__doc__)
    print(f"session: {session}")
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, lambda: input("sandbox$ "))
        line = line.strip()
        if line in {":quit", ":q", "exit"}:
            return
        if line.startswith(":session "):
            session = line.split(maxsplit=1)[1]
            print(f"session: {session}")
            continue
        if not line:
            continue
        try:
            print(await _handle(client, session, line))
        except (ExecutorError, IndexError, ValueError) as exc:
            print(f"error: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m executor.shell")
    parser.add_argument("--session", default="local", help="session (user_id) to use")
    parser.add_argument(
        "--cleanup",
        action="store_true",
        help="remove every container of this app and exit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    client = DockerExecutionClient.from_settings(load_settings().executor)
    try:
        if args.cleanup:
            client.cleanup_all()
            print("removed every sandbox container of this app (workspace volumes kept)")
            return 0
        asyncio.run(_repl(client, args.session))
    except (EOFError, KeyboardInterrupt):
        print()
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.cleanup:
            with contextlib.suppress(ExecutorError):  # the executor translates engine errors
                asyncio.run(client.stop(args.session))
    return 0


if __name__ == "__main__":
    sys.exit(main())
