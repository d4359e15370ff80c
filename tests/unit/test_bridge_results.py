"""What people and models read about a command's bridged calls and egress: the one shaping of
the tool surface, the chat step's line, and the side panels (pure functions)."""

from __future__ import annotations

from types import SimpleNamespace

from executor import ExecutionResult
from executor.results import EgressRecord, ToolCallRecord
from frontend.chat_ui import tool_result
from frontend.panels import network_line, servers_panel
from tool_surface.shaping import describe_execution
from tool_surface.spec import Bounds

BOUNDS = Bounds(output_chars=20_000, max_timeout_s=3600, memory_bytes=1 << 30)


def shaped(**fields) -> dict:
    result = ExecutionResult(exit_code=0, stdout="ok\n", stderr="", **fields)
    return describe_execution(result, timeout=60, limit=20_000, bounds=BOUNDS)


def test_the_calls_a_command_made_are_listed_compactly_with_errors():
    calls = (
        ToolCallRecord("docs", "get_document", 0.0213, True),
        ToolCallRecord("crm", "update_record", 0.5, False, "record acme-9 not found"),
    )
    data = shaped(tool_calls=calls)
    assert data["mcp_calls"] == [
        {"call": "docs.get_document", "ok": True, "duration_s": 0.021},
        {
            "call": "crm.update_record",
            "ok": False,
            "duration_s": 0.5,
            "error": "record acme-9 not found",
        },
    ]
    _, markdown = tool_result(data)
    assert (
        "MCP calls: `docs.get_document` 0.021 s ok, `crm.update_record` 0.5 s error: record"
        in markdown
    )


def test_many_calls_are_cut_and_counted():
    data = shaped(tool_calls=tuple(ToolCallRecord("t", "x", 0.001, True) for _ in range(25)))
    assert len(data["mcp_calls"]) == 20
    assert data["mcp_calls_not_listed"] == 5


def test_refused_egress_is_a_field_and_a_note_naming_the_setting():
    egress = (
        EgressRecord("pypi.org", 443, True, bytes_down=10),
        EgressRecord("evil.example", 443, False, "not in EXECUTOR_EGRESS_ALLOW"),
    )
    data = shaped(egress=egress)
    assert data["egress_refused"] == ["evil.example:443"]
    assert "evil.example:443 (not in EXECUTOR_EGRESS_ALLOW)" in data["note"]
    assert "EXECUTOR_EGRESS_ALLOW" in data["note"]
    assert "mcp_calls" not in shaped()  # nothing said when nothing happened
    assert "egress_refused" not in shaped(egress=egress[:1])


def test_the_servers_panel_shows_only_the_users_servers_with_state_and_errors():
    statuses = [
        SimpleNamespace(
            name="docs", module="docs", state="ready", tool_count=3, last_error="", users=None
        ),
        SimpleNamespace(
            name="crm",
            module="crm",
            state="failed",
            tool_count=None,
            last_error="exit 1",
            users=None,
        ),
        SimpleNamespace(
            name="hr", module="hr", state="ready", tool_count=9, last_error="", users=("bob",)
        ),
    ]
    panel = servers_panel(statuses, "alice")
    assert "**docs** `tools.mcp.docs`: ready, 3 tools" in panel
    assert "**crm** `tools.mcp.crm`: failed, tools not listed yet (last error: exit 1)" in panel
    assert "hr" not in panel
    assert "No MCP servers are configured for you" in servers_panel(statuses[2:], "alice")


def test_the_network_line_says_what_sandboxes_may_reach():
    assert "only pypi.org" in network_line("pypi.org", True)
    assert "off" in network_line("no egress", False)
