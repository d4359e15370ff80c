"""The ADK agent package (`adk run agent`, `adk web`): `agent.root_agent`, built on first access.

Importing this package has no side effects: no `.env` is read, no executor client is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["root_agent"]


def __getattr__(name: str) -> Any:
    if name == "root_agent":
        from .agent import root_agent

        return root_agent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
