"""search_tools' ranking, combining indexes, and argument checks of the tool surface."""

from __future__ import annotations

import pytest

from executor import InvalidArgumentError, SandboxFileNotFoundError, ToolFunction
from tool_surface import Bounds, CombinedIndex, SearchHit, check_args, define_tools, rank
from tool_surface.search import words


def fn(module: str, name: str, summary: str = "") -> ToolFunction:
    return ToolFunction(module, name, f"{name}()", summary)


CATALOG = [
    (fn("tools.mcp.google_drive", "get_document", "Fetch a document by id."), "Returns text."),
    (fn("tools.mcp.crm", "update_record", "Change fields of a CRM record."), "Notes too."),
    (fn("tools.example", "greet", "Generate a greeting message."), "Who to greet."),
    (fn("tools.example", "calculate_sum", "Add up a list of numbers."), "An empty list is 0."),
    (fn("tools.mcp.crm", "search_records", "Find records."), "Matches document notes."),
]


def names(hits: list[SearchHit]) -> list[str]:
    return [h.function.name for h in hits]


def test_words_split_the_way_people_read_names():
    assert words("getDocument") == ["get", "document"]
    assert words("tools.mcp.google_drive") == ["tools", "mcp", "google", "drive"]
    assert words("HTTPServer v2") == ["http", "server", "v", "2"]


def test_a_name_match_outranks_a_docstring_match():
    # "document" is in get_document's name and only in search_records' docstring
    assert names(rank("document", CATALOG, 10)) == ["get_document", "search_records"]


def test_more_query_words_matched_rank_higher():
    hits = rank("crm record notes", CATALOG, 10)
    assert names(hits)[0] == "update_record"
    assert hits[0].score > hits[1].score


def test_a_word_start_matches_at_half_weight():
    (hit,) = rank("greeting", CATALOG, 10)  # the summary's "greeting"
    (prefix,) = rank("greetin", CATALOG, 10)
    assert hit.function.name == prefix.function.name == "greet"
    assert prefix.score == hit.score / 2


def test_short_words_must_match_whole_words():
    assert rank("ad", CATALOG, 10) == []  # not "add"


def test_ties_are_broken_by_module_then_name_and_limit_applies():
    same = [
        (fn("tools.b", "x", "csv"), ""),
        (fn("tools.a", "z", "csv"), ""),
        (fn("tools.a", "y", "csv"), ""),
    ]
    assert names(rank("csv", same, 10)) == ["y", "z", "x"]
    assert names(rank("csv", same, 2)) == ["y", "z"]
    assert names(rank("csv", list(reversed(same)), 10)) == ["y", "z", "x"]


def test_nothing_matching_gives_nothing():
    assert rank("kubernetes", CATALOG, 10) == []


@pytest.mark.parametrize("query", ["", "   ", "?!", "x" * 501])
def test_a_query_without_words_is_refused_in_words(query):
    with pytest.raises(InvalidArgumentError, match="query"):
        rank(query, CATALOG, 10)


class ListIndex:
    """A ToolIndex over a fixed catalog, recording who asked."""

    def __init__(self, catalog: list[tuple[ToolFunction, str]]) -> None:
        self.catalog = catalog
        self.owners: list[str] = []

    async def list(self, owner: str) -> list[ToolFunction]:
        self.owners.append(owner)
        return [f for f, _ in self.catalog]

    async def docstring(self, owner: str, module: str, function: str) -> str:
        self.owners.append(owner)
        for f, doc in self.catalog:
            if (f.module, f.name) == (module, function):
                return doc
        raise SandboxFileNotFoundError(f"no function {function!r} in {module!r}", module)

    async def search(self, owner: str, query: str, limit: int) -> list[SearchHit]:
        self.owners.append(owner)
        return rank(query, self.catalog, limit)


async def test_combined_index_merges_and_routes_by_namespace():
    tools = ListIndex(CATALOG[2:4])
    mcp = ListIndex([CATALOG[0], CATALOG[1], CATALOG[4]])
    index = CombinedIndex({"tools": tools, "tools.mcp": mcp})
    listed = await index.list("alice")
    assert [f.name for f in listed] == [
        "greet",
        "calculate_sum",
        "get_document",
        "update_record",
        "search_records",
    ]
    assert await index.docstring("alice", "tools.mcp.crm", "update_record") == "Notes too."
    assert await index.docstring("alice", "tools.example", "greet") == "Who to greet."
    with pytest.raises(SandboxFileNotFoundError):
        await index.docstring("alice", "tools.mcp.crm", "greet")  # never asked of /tools
    hits = await index.search("alice", "document notes list", 3)
    assert names(hits) == names(rank("document notes list", CATALOG, 3))
    assert set(tools.owners) == set(mcp.owners) == {"alice"}


def test_arguments_are_checked_with_defaults_filled():
    specs = {s.name: s for s in define_tools(Bounds(20_000, 3600, 1 << 30))}
    bash, read, search = specs["execute_bash"], specs["read_file"], specs["search_tools"]
    assert check_args(bash, {"command": "ls"}) == {"command": "ls", "timeout": 60}
    assert check_args(read, {"path": "a", "offset": 3.0}) == {
        "path": "a",
        "offset": 3,
        "line_count": 0,
    }
    assert check_args(search, {"query": "q", "limit": 50})["limit"] == 50
    refused = {
        (bash, "timeout", 3601): "timeout must be between 1 and 3600, not 3601",
        (bash, "timeout", "60"): "timeout must be a number, not '60'",
        (bash, "timeout", True): "timeout must be a number, not True",
        (read, "offset", -1): "offset must be at least 0, not -1",
        (read, "offset", 1.5): "offset must be a whole number, not 1.5",
        (search, "limit", 0): "limit must be between 1 and 50, not 0",
        (bash, "command", None): "command must be a string, not None",
    }
    for (spec, name, value), message in refused.items():
        args = {"command": "ls", "path": "a", "query": "q", name: value}
        with pytest.raises(InvalidArgumentError) as caught:
            check_args(spec, {k: v for k, v in args.items() if k in {p.name for p in spec.params}})
        assert str(caught.value) == message
    with pytest.raises(InvalidArgumentError, match="command is required"):
        check_args(bash, {})
