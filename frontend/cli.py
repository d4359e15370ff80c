"""Command line: `doctor` checks the installation, `cleanup` removes what this app created.

    python -m frontend.cli doctor
    python -m frontend.cli cleanup [--yes]
    python -m frontend.cli run          # the web app (same as `make run`)
    python -m frontend.cli user add|passwd|remove|list   # login users (see cli_users.py)
    python -m frontend.cli servers list|check [NAME...]  # code mode's MCP servers

(`make doctor`, `make cleanup` and `make run` call these.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass

from executor import DockerExecutionClient, ExecutorError, SandboxUnavailableError
from settings import EXIT_CONFIG, ConfigError, Settings, load_settings, refusal

from . import cli_users
from .exposure import exposure_report
from .model_check import model_report


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "warn" or "fail"
    what: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]"}[self.status]
        return f"{mark} {self.what}" + (f"\n       fix: {self.fix}" if self.fix else "")


def _executor(settings: Settings) -> DockerExecutionClient:
    """A client for inspection only: no pool, and nothing is started or adopted."""
    return DockerExecutionClient.from_settings(settings.executor, pool_size=0)


def _executor_checks(settings: Settings) -> list[Check]:
    spec = settings.executor
    try:
        inventory = asyncio.run(_executor(settings).inventory())
    except SandboxUnavailableError as exc:
        return [
            Check(
                "fail",
                f"{spec.engine.capitalize()} is not reachable ({exc})",
                "start the daemon (`sudo systemctl start docker` or `sudo dockerd &`) and "
                "check DOCKER_HOST and your access to the Docker socket",
            )
        ]
    checks = [Check("ok", inventory.engine)]
    if spec.engine == "kubernetes":  # the nodes pull the image; the API cannot look into it
        checks.append(
            Check(
                "warn",
                f"sandbox image {spec.image_name}: pulled by the cluster's nodes, not checked here",
                "build and push it with `python -m executor.image build --bake` "
                "(docs/kubernetes.md)",
            )
        )
    elif inventory.image == "current":
        checks.append(Check("ok", f"sandbox image {spec.image_name} is current"))
    else:
        checks.append(
            Check(
                "fail", f"sandbox image {spec.image_name} is {inventory.image}", "run `make image`"
            )
        )
    members, running = inventory.pool_members, inventory.pool_members_running
    if spec.pool_size <= 0:
        checks.append(Check("ok", "warm pool is off (EXECUTOR_POOL_SIZE=0)"))
    elif running != members:
        checks.append(
            Check(
                "warn",
                f"warm pool: {members - running} of {members} unclaimed members are not running",
                "the running app replaces them; otherwise run `make cleanup`",
            )
        )
    else:
        checks.append(
            Check(
                "ok",
                f"warm pool: {running} ready of {spec.pool_size} (0 while the app is not running)",
            )
        )
    checks.append(
        Check(
            "ok",
            f"{inventory.sessions} session container(s), {inventory.volumes} workspace volume(s)",
        )
    )
    if spec.runtime and spec.runtime not in inventory.runtimes:
        checks.append(
            Check(
                "fail",
                f"EXECUTOR_RUNTIME={spec.runtime}, but the daemon offers only "
                f"{', '.join(inventory.runtimes) or 'its default'}",
                "register it with dockerd (README, 'gVisor') or unset EXECUTOR_RUNTIME",
            )
        )
    elif "runsc" in inventory.runtimes:
        used = "in use" if spec.runtime == "runsc" else "available: EXECUTOR_RUNTIME=runsc uses it"
        checks.append(Check("ok", f"gVisor (runsc) {used}"))
    else:
        checks.append(
            Check("ok", "gVisor: not registered with the daemon (optional; README, 'gVisor')")
        )
    quota_ok = inventory.quota_mode.startswith("loop")
    checks.append(
        Check(
            "ok" if quota_ok else "warn",
            f"workspace quota: {inventory.quota_mode}",
            ""
            if quota_ok
            else "run the app as root next to its Docker daemon for a kernel-"
            "enforced quota (a loop-mounted image per workspace)",
        )
    )
    return checks


def _writable_checks(settings: Settings) -> list[Check]:
    checks = []
    for label, folder in (
        ("data directory", settings.data_dir),
        ("executor state directory", settings.executor.state_dir),
        ("audit log directory", settings.executor.audit_log.parent),
    ):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
            checks.append(Check("ok", f"{label} {folder} is writable"))
        except OSError as exc:
            checks.append(
                Check(
                    "fail",
                    f"{label} {folder} is not writable ({exc.strerror})",
                    "create it and make it writable, or point the setting elsewhere",
                )
            )
    return checks


def _model_check(settings: Settings) -> Check:
    """The model in use, with its key and endpoint tried by one models-list call."""
    return Check(*model_report(settings))


def _mcp_checks(settings: Settings) -> list[Check]:
    """Code mode's servers, from the servers file and the catalog (nothing is started)."""
    from code_mode import CATALOG_FILE, Catalog, doctor_checks, load_servers, own_urls

    try:
        config = load_servers(
            settings.mcp_servers_file,
            os.environ,
            own_urls(settings.host, settings.port, settings.public_url),
        )
    except ConfigError as exc:
        return [Check("fail", f"code mode: {exc}", "fix the MCP servers file")]
    return [Check(*c) for c in doctor_checks(config, Catalog(settings.data_dir / CATALOG_FILE))]


def _egress_check(settings: Settings) -> Check:
    """What sandboxes may reach through their proxy (EXECUTOR_EGRESS_ALLOW)."""
    from executor.egress import Allowlist

    allowed = Allowlist.parse(settings.executor.egress_allow)
    if not allowed.enabled:
        return Check("ok", "egress: off (EXECUTOR_EGRESS_ALLOW is empty; no sandbox network)")
    return Check(
        "ok",
        f"egress: sandboxes may reach {allowed.describe()} through the host's proxy "
        "(EXECUTOR_EGRESS_ALLOW); loopback, private and link-local addresses never",
    )


def servers(settings: Settings, action: str, names: list[str]) -> int:
    """`servers list`: config and catalog, nothing started; `servers check`: start each server,
    list its tools, stop it. One line per server; exit 1 if any failed."""
    from code_mode import CATALOG_FILE, Catalog, McpHub, status_line, statuses

    try:
        hub = McpHub.from_settings(settings)
    except ConfigError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    try:
        unknown = sorted(set(names) - {s.name for s in hub.config.servers})
        if unknown:
            print(f"no such server(s) in {settings.mcp_servers_file}: {', '.join(unknown)}")
            return 1
        if not hub.config.servers:
            print(f"no MCP servers configured ({settings.mcp_servers_file})")
            return 0
        if action == "check":
            rows = hub.check(names or None)
        else:
            rows = statuses(hub.config, Catalog(settings.data_dir / CATALOG_FILE))
            rows = [r for r in rows if not names or r.name in names]
    finally:
        hub.close()
    for row in rows:
        print(status_line(row))
    return 0 if all(row.ok for row in rows) else 1


def doctor(settings: Settings) -> int:
    checks = [
        Check("ok", "settings load"),
        *_executor_checks(settings),
        *_writable_checks(settings),
        _model_check(settings),
        Check(*exposure_report(settings)),
        *_mcp_checks(settings),
        _egress_check(settings),
    ]
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status == "fail"]
    print(f"\n{len(failed)} problem(s) found." if failed else "\nAll good.")
    return 1 if failed else 0


def cleanup(settings: Settings, yes: bool, images: bool = False) -> int:
    """Remove every container and pool member of this app; volumes (chat files) after asking;
    images only with --images. Says what is there and what it takes. (A command line: the
    executor's blocking verbs are right here.)"""
    client = _executor(settings)
    try:
        before = asyncio.run(client.inventory())
        client.cleanup_all(remove_volumes=False)
    except ExecutorError as exc:
        print(f"cleanup failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"removed {before.sessions + before.pool_members} container(s) "
        "(sessions and warm-pool members)"
    )
    listed = ", ".join(f"{tag} ({size / 1e6:.0f} MB)" for tag, size in before.images)
    if images:
        client.cleanup_all(remove_images=True)
        print(f"removed image(s): {listed or 'none'} (`make image` builds them again)")
    elif listed:
        print(f"kept image(s): {listed}; pass --images to remove them")
    if not before.volumes:
        print("no workspace volumes")
        return 0
    if not yes:
        if not sys.stdin.isatty():
            print(f"kept {before.volumes} workspace volume(s); pass --yes to delete them")
            return 0
        answer = input(
            f"Delete {before.volumes} workspace volume(s), i.e. every chat's files? [y/N] "
        )
        if answer.strip().lower() not in {"y", "yes"}:
            print(f"kept {before.volumes} workspace volume(s)")
            return 0
    client.cleanup_all(remove_volumes=True)
    print(f"removed {before.volumes} workspace volume(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m frontend.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="check Docker, the image, the pool, directories, the model")
    clean = commands.add_parser("cleanup", help="remove every container and volume of this app")
    clean.add_argument("--yes", action="store_true", help="also delete volumes without asking")
    clean.add_argument("--images", action="store_true", help="also remove the sandbox images")
    commands.add_parser("run", help="start the web app")
    listing = commands.add_parser("servers", help="code mode's MCP servers: list or check them")
    listing.add_argument("action", choices=["list", "check"], help="list: no starts; check: start")
    listing.add_argument("names", nargs="*", help="only these servers")
    cli_users.register(commands)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["mcp"], ["token"]):  # their own parsers, shared with python -m mcp_server
        import mcp_server.cli as mcp_cli

        return mcp_cli.main(argv[1:]) if argv[0] == "mcp" else mcp_cli.main(argv)
    commands.add_parser("mcp", help="serve the MCP tools on stdin/stdout (for desktop clients)")
    commands.add_parser("token", help="create, list or revoke MCP tokens")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()  # before the web app's imports: a refusal comes at once
    except ConfigError as exc:
        if args.command == "doctor":
            print(Check("fail", f"settings: {exc}", "fix them in .env or the environment").line())
        print(refusal(exc), file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "run":
        from .server import main as run_app

        return run_app()
    if args.command == "user":
        return cli_users.run(args, settings)
    if args.command == "doctor":
        return doctor(settings)
    if args.command == "servers":
        return servers(settings, args.action, args.names)
    return cleanup(settings, args.yes, args.images)


if __name__ == "__main__":
    sys.exit(main())
