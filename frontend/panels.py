"""Pure helpers for the side panels: the chat list, the file table, the examples and the MCP
connection panel. No Gradio here; unit-tested."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_server import client_configs
from settings import PROJECT_ROOT

from .chat_ui import human_size

SAMPLE_CSV = PROJECT_ROOT / "samples" / "sales.csv"
SEARCH_FROM = 10  # the chat list gets a search box once there are more chats than this


def relative_time(when: float, now: float | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', 'yesterday', '4 days ago', else the date."""
    now = time.time() if now is None else now
    seconds = max(0.0, now - when)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} days ago"
    return time.strftime("%b %d", time.localtime(when))


def file_rows(entries: Iterable[Any], now: float | None = None) -> list[list[str]]:
    """Rows for the file panel: path relative to /workspace, size, when it changed (files only)."""
    rows = []
    for entry in entries:
        if entry.is_dir:
            continue
        relative = entry.path.removeprefix("/workspace/")
        rows.append([relative, human_size(entry.size), relative_time(entry.modified, now)])
    return rows


def chat_choices(
    chats: Sequence[Any], query: str = "", now: float | None = None
) -> list[tuple[str, str]]:
    """(label, id) of the chats whose title matches `query`, most recent first."""
    words = query.lower().split()
    found = [c for c in chats if all(w in c.title.lower() for w in words)]
    found.sort(key=lambda c: c.updated, reverse=True)
    return [(f"{c.title}  ·  {relative_time(c.updated, now)}", c.session_id) for c in found]


@dataclass(frozen=True)
class Example:
    title: str  # what the button says
    text: str  # what it puts in the message box
    files: tuple[str, ...] = ()


CODE_MODE_DEMO = {"docs", "crm"}  # the sample servers (samples/mcp_servers.json) the step uses


def examples(offline: bool, servers: Iterable[str] = ()) -> list[Example]:
    """The demo walkthrough, in order: code for the offline model, requests for a real one. With
    the sample MCP servers configured, one step calls them from code (code mode)."""
    csv = (str(SAMPLE_CSV),)
    code_mode = set(servers) >= CODE_MODE_DEMO
    if offline:
        steps = [
            Example("Run a command", "$ uname -srm && python3 --version && whoami && pwd"),
            Example(
                "Summarise a CSV",
                "```python\nimport pandas as pd\ndf = pd.read_csv('/workspace/sales.csv')\n"
                "print(df.describe())\nprint(df.groupby('region')['revenue'].sum().round(2))\n```",
                csv,
            ),
            Example(
                "Plot it",
                "```python\nimport matplotlib.pyplot as plt  # df is still here from before\n"
                "df.groupby('date')['revenue'].sum().plot(title='Revenue per week')\n"
                "plt.show()  # the chart appears here, and in /workspace/figures\n```",
            ),
            Example(
                "Chart with the skill",
                "```bash\npython3 /skills/csv-summary/scripts/summarize.py "
                "/workspace/sales.csv --chart /workspace/sales_chart.png\n```",
            ),
            Example(
                "MCP from code",
                "```python\nfrom tools.mcp import docs, crm  # MCP servers, as Python modules\n"
                "meeting = [d for d in docs.list_documents() if d['id'].startswith('meet')][0]\n"
                "text = docs.get_document(document_id=meeting['id'])['text']  # stays here\n"
                "crm.update_record(record_id='acme-001', notes=text)\n"
                "print(f'copied {len(text):,} characters into CRM record acme-001')\n```",
            ),
            Example("List files", "/files"),
        ]
    else:
        steps = [
            Example(
                "Run a command", "Which Linux and Python does your sandbox run? Check, don't guess."
            ),
            Example(
                "Summarise a CSV",
                "Summarise the attached sales.csv with pandas: revenue per region, and "
                "anything odd.",
                csv,
            ),
            Example("Plot it", "Plot the weekly revenue from that data as a line chart."),
            Example(
                "Chart with the skill", "Use the csv-summary skill on sales.csv and show its chart."
            ),
            Example(
                "MCP from code",
                "Copy the transcript of the Acme meeting from the document store into CRM record "
                "acme-001, in code, without showing it here.",
            ),
            Example("List files", "Which files are in my workspace now?"),
        ]
    return [step for step in steps if code_mode or step.title != "MCP from code"]


def mcp_panel(endpoint: str, sandbox_id: str, *, login_required: bool) -> str:
    """Markdown for the 'Connect an MCP client' panel (the token is never shown here)."""
    owner = " --user YOUR_LOGIN" if login_required else ""
    lines = [
        f"**Endpoint:** `{endpoint}`",
        "",
        "MCP clients (Claude Code, Cursor, an ADK agent, the Inspector) run code in your "
        "sandboxes here, this chat's included. Make a token on the machine running the app "
        "(it is printed once):",
        "",
        f"```bash\n.venv/bin/mcp-code-executor token create my-laptop{owner}\n```",
        "",
        f'To work in **this chat\'s workspace**, pass `sandbox_id="{sandbox_id}"` to the tools '
        "(or call `list_sandboxes`).",
    ]
    for client, snippet in client_configs(endpoint, "YOUR_TOKEN").items():
        lang = "json" if snippet.lstrip().startswith("{") else "bash"
        if client.startswith("ADK"):
            lang = "python"
        lines += ["", f"**{client}**", f"```{lang}\n{snippet}\n```"]
    return "\n".join(lines)


def servers_panel(statuses: Sequence[Any], owner: str) -> str:
    """Markdown for the 'MCP servers' panel: the servers this user's sandbox code can call
    (code mode), each with its state, tool count and last error."""
    mine = [s for s in statuses if s.users is None or owner in s.users]
    if not mine:
        return (
            "No MCP servers are configured for you. The app's operator lists them in "
            "`APP_MCP_SERVERS_FILE` (the format Claude Desktop and Cursor use); each becomes a "
            "module sandbox code imports, `from tools.mcp import <server>`."
        )
    lines = []
    for status in mine:  # a list, not a table: the side column is narrow
        tools = (
            "tools not listed yet" if status.tool_count is None else f"{status.tool_count} tools"
        )
        line = f"- **{status.name}** `tools.mcp.{status.module}`: {status.state}, {tools}"
        if status.last_error:
            line += f" (last error: {status.last_error[:120]})"
        lines.append(line)
    lines += [
        "",
        "Code in this chat's sandbox calls them (`from tools.mcp import "
        f"{mine[0].module}`); the servers and their credentials stay on this machine.",
    ]
    return "\n".join(lines)


def network_line(allowed: str, enabled: bool) -> str:
    """What the sandbox can reach, in one line (EXECUTOR_EGRESS_ALLOW)."""
    if not enabled:
        return "**Network:** off (no egress; `EXECUTOR_EGRESS_ALLOW` is empty)"
    return (
        f"**Network:** only {allowed}, through the host's proxy (`pip install` works for "
        "those); everything else is refused"
    )
