"""Container names derived from arbitrary user ids are safe, deterministic and distinct."""

from __future__ import annotations

import re

import pytest

from executor.manager import container_name

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
IDS = [
    "../x",
    "a b",
    "a;rm -rf /",
    "x" * 300,
    "ünïcødé 🚀",
    "",
    "$(id)",
    "\ud800",
    "A",
    "a",
]


@pytest.mark.parametrize("user_id", IDS)
def test_name_is_docker_safe_and_bounded(user_id):
    name = container_name("mcp-code-executor", user_id)
    assert DOCKER_NAME.match(name)
    assert len(name) <= 100
    assert name == container_name("mcp-code-executor", user_id)


def test_names_are_distinct_even_when_slugs_collide():
    names = {container_name("app", uid) for uid in [*IDS, "a b", "a-b", "A B", "a_b"]}
    assert len(names) == len(set([*IDS, "a-b", "A B", "a_b"]))
