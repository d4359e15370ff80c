"""Argument checks of the public API: refused before anything runs, with a message that says why."""

from __future__ import annotations

import math

import pytest

from executor import InvalidArgumentError
from executor import _validate as validate


@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan, "10", True, None])
def test_a_timeout_must_be_a_positive_finite_number(value):
    with pytest.raises(InvalidArgumentError, match="timeout"):
        validate.timeout_s(value, 3600)


def test_a_timeout_over_the_limit_names_the_limit():
    with pytest.raises(InvalidArgumentError, match="over the limit of 60 s"):
        validate.timeout_s(61, 60)
    assert validate.timeout_s(60, 60) == 60.0
    assert validate.timeout_s(0.5, 60) == 0.5


def test_a_command_with_a_nul_byte_is_refused():
    with pytest.raises(InvalidArgumentError, match="NUL"):
        validate.command("echo a\0b")


def test_a_command_too_long_for_argv_says_to_use_a_file():
    with pytest.raises(InvalidArgumentError, match="write it to a file"):
        validate.command("x" * (validate.MAX_COMMAND_BYTES + 1))
    assert validate.command("x" * validate.MAX_COMMAND_BYTES)


def test_a_command_must_be_text():
    with pytest.raises(InvalidArgumentError, match="string"):
        validate.command(b"ls")


@pytest.mark.parametrize("value", ["", "a\0b", None, 3])
def test_a_path_must_be_a_non_empty_string_without_nul(value):
    with pytest.raises(InvalidArgumentError, match="invalid path"):
        validate.path(value)


def test_offsets_and_line_counts_are_whole_numbers_in_range():
    assert validate.offset(0) == 0
    assert validate.line_count(None) is None
    assert validate.line_count(3) == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="offset"):
            validate.offset(bad)
    for bad in (0, -2, "3"):
        with pytest.raises(InvalidArgumentError, match="line_count"):
            validate.line_count(bad)


def test_content_is_text_as_utf8_or_bytes():
    assert validate.content("é") == "é".encode()
    assert validate.content(bytearray(b"ab")) == b"ab"
    with pytest.raises(InvalidArgumentError, match="str or bytes"):
        validate.content(42)
