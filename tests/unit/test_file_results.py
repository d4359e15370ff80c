"""What a file operation's outcome means: metadata, or the error it stands for."""

from __future__ import annotations

import json

import pytest

from executor import (
    FileTooLargeError,
    InvalidArgumentError,
    NotARegularFileError,
    PathNotAllowedError,
    QuotaExceededError,
    SandboxCommandError,
    SandboxFileNotFoundError,
)
from executor._exec import StreamEnd
from executor._file_results import file_error, file_meta
from executor._wording import Outcome


def refused(kind: str, message: str = "nope") -> Outcome:
    return Outcome(3, b"", json.dumps({"kind": kind, "message": message}).encode())


def error_of(outcome: Outcome):
    return file_error("read", "a.txt", outcome, timeout_s=60, max_file_bytes=1000)


def test_success_has_no_error_and_its_metadata_is_the_last_line():
    ok = Outcome(0, b"data", b'noise\n{"size": 4}')
    assert error_of(ok) is None
    assert file_meta(ok.stderr) == {"size": 4}
    assert file_meta(b"not json") == {}


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("not_found", SandboxFileNotFoundError),
        ("not_allowed", PathNotAllowedError),
        ("not_file", NotARegularFileError),
        ("invalid", InvalidArgumentError),
        ("quota", QuotaExceededError),
        ("too_large", FileTooLargeError),
        ("no_space", QuotaExceededError),
        ("os_error", SandboxCommandError),
    ],
)
def test_each_refusal_kind_maps_to_its_error_class(kind, error):
    assert isinstance(error_of(refused(kind)), error)


def test_path_errors_carry_the_path_and_are_builtin_errors_too():
    error = error_of(refused("not_found", "no such file: a.txt"))
    assert isinstance(error, FileNotFoundError)
    assert (str(error), error.path) == ("no such file: a.txt", "a.txt")


def test_the_fsize_limit_and_a_deadline_are_explained():
    assert "per-file limit of 1,000 bytes" in str(error_of(Outcome(153, b"", b"")))
    late = error_of(Outcome(0, b"", b"", ended=StreamEnd.DEADLINE))
    assert isinstance(late, SandboxCommandError)
    assert "did not finish within 60 s" in str(late)
