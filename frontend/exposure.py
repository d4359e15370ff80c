"""Refuse to serve code execution to the network without login (as Jupyter refuses without a token).

Loopback (127.0.0.0/8, ::1, localhost) is the one place where "no login, one local user" is
safe. Anywhere else the app needs login for the UI; the MCP endpoint is protected by its own
bearer tokens (`mcp_protected`). `APP_ALLOW_UNAUTHENTICATED=true` turns the refusal into a loud
warning, and `exposed_without_login()` tells the page header to show it.
"""

from __future__ import annotations

import ipaddress
import logging

from settings import ConfigError, Settings, auth_pairs

from .users import UserStore

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the app on this machine."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name (or "" = every interface): assume it is reachable
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def login_configured(settings: Settings) -> bool:
    """Whether any user can log in (users file or APP_AUTH)."""
    return bool(auth_pairs(settings)) or bool(UserStore(settings.users_file).names())


def exposed_without_login(settings: Settings, *, login_enabled: bool | None = None) -> bool:
    """True when anyone on the network may use the UI: the header should say so."""
    if login_enabled is None:
        login_enabled = login_configured(settings)
    return not is_loopback(settings.host) and not login_enabled


def check_exposure(
    settings: Settings, *, login_enabled: bool | None = None, mcp_protected: bool = True
) -> list[str]:
    """Warnings to log at start; raises ConfigError when serving beyond loopback unprotected.

    Args:
        settings: the app's settings (host, users, APP_ALLOW_UNAUTHENTICATED, proxies).
        login_enabled: whether login is on; None = look at the users file and APP_AUTH.
        mcp_protected: whether the MCP endpoint requires bearer tokens (protects MCP only).
    """
    if is_loopback(settings.host):
        return []
    if login_enabled is None:
        login_enabled = login_configured(settings)
    unprotected = []
    if not login_enabled:
        unprotected.append("the chat UI has no login")
    if not mcp_protected:
        unprotected.append("the MCP endpoint takes no bearer token")
    warnings = []
    if unprotected:
        what = " and ".join(unprotected)
        if not settings.allow_unauthenticated:
            raise ConfigError(
                f"refusing to start: APP_HOST={settings.host} serves this app beyond this "
                f"machine, but {what}, so anyone who can reach it could run code in its "
                "sandboxes. Turn login on with `.venv/bin/mcp-code-executor user add NAME` "
                f"(users are kept, hashed, in {settings.users_file}), or serve on loopback "
                "(APP_HOST=127.0.0.1, the default) behind an HTTPS reverse proxy, or set "
                "APP_ALLOW_UNAUTHENTICATED=true to accept the risk."
            )
        warnings.append(
            f"UNAUTHENTICATED: APP_HOST={settings.host} and {what}; anyone who can reach it can "
            "run code in its sandboxes (APP_ALLOW_UNAUTHENTICATED=true)"
        )
    if settings.trusted_proxies.strip() == "*":
        warnings.append(
            "APP_TRUSTED_PROXIES=* believes X-Forwarded-For from anyone: clients can pick their "
            "own address and dodge the per-address login throttle; list your proxy instead"
        )
    return warnings


def exposure_report(settings: Settings) -> tuple[str, str, str]:
    """(status "ok"/"warn"/"fail", what, fix) for `make doctor`."""
    login = login_configured(settings)
    where = "loopback only" if is_loopback(settings.host) else "reachable from the network"
    users = f"login on ({len(auth_pairs(settings))} APP_AUTH, " if login else "login off"
    if login:
        users += f"{len(UserStore(settings.users_file).names())} in {settings.users_file})"
    what = f"exposure: APP_HOST={settings.host} ({where}), {users}"
    try:
        warnings = check_exposure(settings, login_enabled=login)
    except ConfigError:
        return "fail", what, "`.venv/bin/mcp-code-executor user add NAME`, or APP_HOST=127.0.0.1"
    if warnings:
        return "warn", what + "; " + "; ".join(warnings), ""
    if auth_pairs(settings):
        return "warn", what, "move APP_AUTH users to hashed ones: `mcp-code-executor user add NAME`"
    return "ok", what, ""
