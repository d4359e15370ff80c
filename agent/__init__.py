"""The ADK agent package (`adk run agent`, `adk web`): `agent.agent.root_agent`."""

from . import agent

__all__ = ["agent"]
