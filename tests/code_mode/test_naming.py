"""Python names from MCP names (the rule in code_mode.naming), and schema -> type hints."""

from __future__ import annotations

import keyword

import pytest

from code_mode import assign_names, python_name
from code_mode._schema import annotation, describe

pytestmark = pytest.mark.code_mode


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("google-drive", "google_drive"),
        ("getDocument", "get_document"),
        ("get-tiny-image", "get_tiny_image"),
        ("get_current_time", "get_current_time"),  # already a lowercase identifier: unchanged
        ("a__b", "a__b"),
        ("HTTPServer", "http_server"),
        ("getURL", "get_url"),
        ("XMLHttpRequest", "xml_http_request"),
        ("files.read/v2", "files_read_v2"),
        ("café au lait", "cafe_au_lait"),
        ("_private", "private"),
        ("class", "class_"),
        ("from", "from_"),
        ("id", "id_"),
        ("list", "list_"),
        ("2fa", "tool_2fa"),
        ("---", "tool"),
    ],
)
def test_function_names(name, expected):
    result = python_name(name, "function")
    assert result == expected
    assert result.isidentifier()
    assert not keyword.iskeyword(result)


def test_the_prefix_for_a_leading_digit_names_the_kind():
    assert python_name("3d", "module") == "mcp_3d"
    assert python_name("3d", "argument") == "arg_3d"


def test_collisions_keep_unchanged_names_first_then_sorted_originals():
    names = assign_names(
        ["getDocument", "get-document", "get_document", "get document"], "function"
    )
    assert names == {
        "get_document": "get_document",
        "get document": "get_document_2",
        "get-document": "get_document_3",
        "getDocument": "get_document_4",
    }
    # the same whatever order they come in
    assert assign_names(reversed(list(names)), "function") == names


def test_a_suffix_never_takes_a_name_in_use():
    names = assign_names(["a-b", "a_b", "a_b_2"], "function")
    assert names == {"a_b": "a_b", "a_b_2": "a_b_2", "a-b": "a_b_3"}
    assert len(set(names.values())) == 3


def test_taken_names_are_never_given_out():
    assert assign_names(["x"], "argument", taken={"x"}) == {"x": "x_2"}


@pytest.mark.parametrize(
    ("schema", "hint"),
    [
        ({"type": "string"}, "str"),
        ({"type": "integer"}, "int"),
        ({"type": "number"}, "float"),
        ({"type": "boolean"}, "bool"),
        ({"type": "array", "items": {"type": "string"}}, "list[str]"),
        ({"type": "array"}, "list[Any]"),
        ({"type": "object", "properties": {"a": {}}}, "dict[str, Any]"),
        ({"enum": ["a", "b"]}, "Literal['a', 'b']"),
        ({"type": "string", "enum": ["x"]}, "Literal['x']"),
        ({"const": 3}, "Literal[3]"),
        ({"type": ["string", "null"]}, "Any"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "Any"),
        ({"$ref": "#/$defs/X"}, "Any"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "Any"),
        ({"enum": [1.5, 2.5]}, "Any"),  # floats are not Literal values
        ({}, "Any"),
    ],
)
def test_schema_hints(schema, hint):
    assert annotation(schema) == hint


def test_descriptions_read_what_the_hint_leaves_out():
    assert describe({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "str or None"
    root = {
        "$defs": {
            "P": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
        },
        "type": "object",
        "properties": {
            "point": {"$ref": "#/$defs/P"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["point"],
    }
    assert describe(root) == (
        "dict with keys: point (dict with keys: x (int)), tags (list of str, optional)"
    )
