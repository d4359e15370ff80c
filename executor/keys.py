"""Executor keys: one string per chat, from which the owner (for limits and audit) can be read.

The executor accepts any string as a key (`user_id` in its API). Callers that have users and
chats should build keys with `chat_key(user, chat)`: the executor then applies per-user limits
to `user` and writes both to the audit log. Any other string is its own owner.
"""

from __future__ import annotations

import json

# The HTTP header with which a call to the MCP endpoint names its sandbox (the agent's MCP tools
# send it; the MCP server reads it). Lowercase: header lookups there are of lowercased names.
SANDBOX_HEADER = "x-sandbox-id"


def chat_key(user: str, chat: str) -> str:
    return json.dumps([user, chat])


def split_key(key: str) -> tuple[str, str]:
    """(owner, chat) of a key made by chat_key; (key, key) for any other string."""
    if key.startswith("["):
        try:
            value = json.loads(key)
        except ValueError:
            return key, key
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return value[0], value[1]
    return key, key
