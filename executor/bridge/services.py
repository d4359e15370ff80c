"""What every request's pipes share, made once per executor: the bridge loop, code mode (when
configured), the egress relay (when EXECUTOR_EGRESS_ALLOW allows anything) and the audit log.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from settings import ExecutorSettings

from ..audit import AuditLog
from ..egress import Allowlist, EgressLimits, EgressRelay
from .contracts import ToolBridge
from .loop import BridgeLoop


@dataclass
class BridgeServices:
    """The long-lived parts behind every request's pipes."""

    loop: BridgeLoop
    audit: AuditLog
    tools: ToolBridge | None = None
    relay: EgressRelay | None = None
    call_timeout_s: float = 120.0
    allowlist: Allowlist = field(default_factory=lambda: Allowlist.parse(""))

    def close(self) -> None:
        """Close every egress connection, stop the loop (calls still running are cancelled),
        then close code mode (its servers stop)."""
        if self.relay is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon(self.relay.close)
        self.loop.close()
        close = getattr(self.tools, "close", None)
        if callable(close):
            close()


def bridge_services(
    spec: ExecutorSettings,
    audit: AuditLog,
    tools: ToolBridge | None = None,
    call_timeout_s: float = 120.0,
) -> BridgeServices:
    """The services of one executor (a bad EXECUTOR_EGRESS_ALLOW raises ConfigError here)."""
    allowlist = Allowlist.parse(spec.egress_allow)
    services = BridgeServices(
        BridgeLoop(), audit, tools, call_timeout_s=call_timeout_s, allowlist=allowlist
    )
    if allowlist.enabled:
        limits = EgressLimits.from_settings(spec)
        services.relay = EgressRelay(allowlist, limits, lambda record: _audit(audit, record))
    return services


def _audit(audit: AuditLog, record: dict[str, Any]) -> None:
    """One line per egress connection (the relay's record), refused ones included."""
    audit.record(
        record["key"],
        "egress",
        f"{record['host']}:{record['port']}",
        duration_s=float(record.get("duration_s") or 0.0),
        bytes_in=int(record.get("bytes_in") or 0),  # from the peer into the sandbox
        bytes_out=int(record.get("bytes_out") or 0),  # from the sandbox to the peer
        error=None if record.get("allowed") else str(record.get("reason") or "refused"),
        extra={
            "address": record.get("address") or "",
            "allowed": bool(record.get("allowed")),
            "status": record.get("status"),
            "reason": str(record.get("reason") or ""),
        },
    )
