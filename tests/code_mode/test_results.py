"""MCP results as sandbox code receives them (the rules in code_mode.results)."""

from __future__ import annotations

import mcp_types as types
import pytest

from code_mode import ToolSpec
from code_mode.results import outcome, value_of

pytestmark = pytest.mark.code_mode

WRAPPED = ToolSpec(
    name="numbers",
    output_schema={
        "type": "object",
        "properties": {"result": {"type": "array"}},
        "required": ["result"],
        "x-fastmcp-wrap-result": True,
    },
)


def text(t: str) -> types.TextContent:
    return types.TextContent(type="text", text=t)


def test_text_only_is_a_string_joined_with_newlines():
    result = types.CallToolResult(content=[text("one"), text("two")])
    assert value_of(result, None) == "one\ntwo"


def test_structured_content_wins_and_fastmcp_wrapping_is_removed():
    plain = types.CallToolResult(content=[text("{}")], structured_content={"a": 1})
    assert value_of(plain, None) == {"a": 1}
    wrapped = types.CallToolResult(content=[text("[1, 2]")], structured_content={"result": [1, 2]})
    assert value_of(wrapped, WRAPPED) == [1, 2]
    # a tool whose own dict happens to have one key "result", without the wrap marker, is kept
    assert value_of(wrapped, ToolSpec(name="x", output_schema={"type": "object"})) == {
        "result": [1, 2]
    }


def test_images_resources_and_links_become_dicts():
    image = types.ImageContent(type="image", data="aGk=", mime_type="image/png")
    resource = types.EmbeddedResource(
        type="resource",
        resource=types.TextResourceContents(uri="demo://a", mime_type="text/plain", text="hello"),
    )
    blob = types.EmbeddedResource(
        type="resource", resource=types.BlobResourceContents(uri="demo://b", blob="AAE=")
    )
    link = types.ResourceLink(type="resource_link", uri="demo://c", name="C", description="the c")
    assert value_of(types.CallToolResult(content=[image]), None) == {
        "type": "image",
        "mime_type": "image/png",
        "data": "aGk=",
    }
    mixed = value_of(types.CallToolResult(content=[text("see:"), resource, blob, link]), None)
    assert mixed == [
        {"type": "text", "text": "see:"},
        {"type": "resource", "uri": "demo://a", "mime_type": "text/plain", "text": "hello"},
        {"type": "resource", "uri": "demo://b", "mime_type": None, "blob": "AAE="},
        {"type": "resource_link", "uri": "demo://c", "name": "C", "description": "the c"},
    ]


def test_no_content_is_none():
    assert value_of(types.CallToolResult(content=[]), None) is None


def test_is_error_is_a_failed_outcome_with_the_servers_message():
    result = types.CallToolResult(content=[text("quota exceeded")], is_error=True)
    answer = outcome(result, None, "s.t")
    assert not answer.ok
    assert answer.error == "quota exceeded"


def test_a_result_over_the_limit_is_refused_with_its_size_and_the_limit():
    result = types.CallToolResult(content=[text("x" * 2000)])
    answer = outcome(result, None, "docs.get", limit=1000)
    assert not answer.ok
    assert answer.value is None
    assert "2,002 bytes" in answer.error
    assert "1,000 bytes" in answer.error
