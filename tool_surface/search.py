"""Ranking functions by the words of a query: simple, deterministic, explainable.

Names are split into words the way people read them (`getDocument` -> get, document;
`google_drive` -> google, drive). Each query word scores in the best field it appears in:
name 4, module 2, summary 2, docstring 1; a word that only starts a longer word (`greet` in
`greeting`) scores half. A function's score is the sum over the query's words; ties go by
module, then name, so the same query always gives the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from executor import InvalidArgumentError, ToolFunction

MAX_QUERY_CHARS = 500
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_FIELD_WEIGHTS = (("name", 4.0), ("module", 2.0), ("summary", 2.0), ("doc", 1.0))
_MIN_PREFIX = 3  # shorter query words must match a whole word


@dataclass(frozen=True)
class SearchHit:
    """One function a search found, and how well it matched (higher is better)."""

    function: ToolFunction
    score: float


def words(text: str) -> list[str]:
    """The lowercase words of `text`, camelCase and snake_case split."""
    return [w.lower() for w in _WORD.findall(text)]


def query_words(query: str) -> list[str]:
    """The distinct words of a query, in order; refuses a query with none."""
    if not isinstance(query, str) or len(query) > MAX_QUERY_CHARS:
        raise InvalidArgumentError(
            f"query must be a string of at most {MAX_QUERY_CHARS} characters"
        )
    found = list(dict.fromkeys(words(query)))
    if not found:
        raise InvalidArgumentError(
            f"query {query!r} has no words to look for: give words such as 'csv summary'"
        )
    return found


def _match(term: str, field: set[str]) -> float:
    if term in field:
        return 1.0
    if len(term) >= _MIN_PREFIX and any(w.startswith(term) for w in field):
        return 0.5
    return 0.0


def score(terms: list[str], function: ToolFunction, doc: str) -> float:
    fields = {
        "name": set(words(function.name)),
        "module": set(words(function.module)),
        "summary": set(words(function.summary)),
        "doc": set(words(doc)),
    }
    return sum(
        max(weight * _match(term, fields[field]) for field, weight in _FIELD_WEIGHTS)
        for term in terms
    )


def order(hits: Iterable[SearchHit]) -> list[SearchHit]:
    """Best first; ties by module, then name."""
    return sorted(hits, key=lambda h: (-h.score, h.function.module, h.function.name))


def rank(query: str, candidates: Iterable[tuple[ToolFunction, str]], limit: int) -> list[SearchHit]:
    """The best `limit` of (function, docstring) pairs for `query`; those matching no word of
    it are left out."""
    terms = query_words(query)
    hits = [SearchHit(f, s) for f, doc in candidates if (s := score(terms, f, doc)) > 0]
    return order(hits)[:limit]
