"""Controlled egress, the host's half: the allowlist policy and the relay of sandbox connections.

Sandboxes keep `network_mode=none`. A proxy inside each sandbox carries client connections over
the runner's channel to the host; `EgressRelay` decides each with `Allowlist` and dials it.
"""

from .connection import EgressConnection, EgressLimits, EgressSink, Refusal
from .policy import VARIABLE, Allowlist, Decision, address_problem, classify_host
from .relay import EgressRelay

__all__ = [
    "VARIABLE",
    "Allowlist",
    "Decision",
    "EgressConnection",
    "EgressLimits",
    "EgressRelay",
    "EgressSink",
    "Refusal",
    "address_problem",
    "classify_host",
]
