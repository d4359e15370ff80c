"""The host end of what sandbox code reaches over its runner: code mode's calls and egress."""

from .contracts import CallContext, CallOutcome, ToolBridge, ToolTree

__all__ = ["CallContext", "CallOutcome", "ToolBridge", "ToolTree"]
