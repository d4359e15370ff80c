"""The text printed at start when a token was just made: how to connect each MCP client."""

from __future__ import annotations

import json

SERVER_KEY = "code-executor"


def client_configs(url: str, token: str) -> dict[str, str]:
    """Ready-to-paste configuration for each client, by client name."""
    header = f"Authorization: Bearer {token}"
    cursor = {
        "mcpServers": {SERVER_KEY: {"url": url, "headers": {"Authorization": f"Bearer {token}"}}}
    }
    adk = (
        "from google.adk.tools.mcp_tool import McpToolset, StreamableHTTPConnectionParams\n\n"
        "tools = McpToolset(\n"
        "    connection_params=StreamableHTTPConnectionParams(\n"
        f"        url={url!r},\n"
        f"        headers={{'Authorization': 'Bearer {token}'}},\n"
        "        timeout=10,\n"
        "        sse_read_timeout=3700,  # longer than the longest command\n"
        "    )\n"
        ")"
    )
    return {
        "Claude Code": (
            f"claude mcp add --transport http {SERVER_KEY} {url} --header {json.dumps(header)}"
        ),
        "Cursor (~/.cursor/mcp.json)": json.dumps(cursor, indent=2),
        "ADK (Python)": adk,
        "MCP Inspector (CLI)": (
            f"npx @modelcontextprotocol/inspector --cli {url} --transport http "
            f"--header {json.dumps(header)} --method tools/list"
        ),
    }


def first_run_banner(url: str, token: str) -> str:
    """What `make run` prints once, when it made the local user's first MCP token."""
    lines = [
        "",
        "=" * 78,
        f"MCP endpoint: {url}",
        f"A token for MCP clients was created (shown only now): {token}",
        "Manage tokens with `mcp-code-executor token create|list|revoke`.",
        "",
    ]
    for name, text in client_configs(url, token).items():
        lines += [f"{name}:", *(f"    {line}" for line in text.splitlines()), ""]
    lines.append("=" * 78)
    return "\n".join(lines)
