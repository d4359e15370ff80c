"""From an outcome to a typed result: fields for programs, bracketed lines for people."""

from __future__ import annotations

from executor._exec import StreamEnd
from executor._wording import (
    Notes,
    Notice,
    Outcome,
    build_result,
    drop_marker,
    human_bytes,
    python_lost_reason,
)

LIMITS = {"timeout_s": 5, "output_limit": 1000, "flood_limit": 64_000, "memory_limit": 1 << 30}


def result(outcome: Outcome, notes: Notes | None = None):
    return build_result(outcome, notes or Notes(), **LIMITS)


def test_a_clean_run_has_no_flags_and_no_notes():
    done = result(Outcome(0, b"hi\n", b"", runner=True, duration_s=0.01))
    assert (done.exit_code, done.stdout, done.stderr) == (0, "hi\n", "")
    assert done.ok
    assert done.runner
    assert not (done.timed_out)
    assert not (done.stopped)
    assert not (done.oom_killed)
    assert not (done.output_truncated)
    assert done.notes == ()


def test_a_timeout_is_exit_124_with_the_flag_and_a_line_saying_so():
    done = result(Outcome(137, b"", b"partial", ended=StreamEnd.DEADLINE))
    assert (done.exit_code, done.timed_out, done.stopped) == (124, True, False)
    assert (
        done.stderr
        == "partial\n[command timed out after 5 s; it and every process it started were killed]"
    )
    assert not done.ok


def test_a_cancelled_command_is_stopped_not_timed_out():
    done = result(Outcome(0, b"", b"", ended=StreamEnd.CANCELLED))
    assert (done.exit_code, done.stopped, done.timed_out) == (137, True, False)
    assert "cancelled" in done.stderr


def test_a_flood_is_its_own_flag():
    done = result(Outcome(0, b"", b"", ended=StreamEnd.FLOOD))
    assert (done.exit_code, done.flooded) == (137, True)
    assert "64,000 bytes of output" in done.stderr


def test_a_memory_kill_is_a_field_and_names_the_limit():
    done = result(Outcome(137, b"", b"Killed", oom=True))
    assert done.oom_killed
    assert "ran out of memory (limit 1 GiB)" in done.stderr


def test_dropped_output_is_counted_and_marked():
    done = result(Outcome(0, b"x" * 1000, b"", stdout_dropped=5000))
    assert done.output_truncated
    assert done.stdout_dropped_bytes == 5000
    assert done.stdout.endswith(drop_marker("stdout", 5000, 1000))


def test_notes_are_worded_once_in_order_and_kept_as_a_field():
    notes = Notes("docker exec")
    notes.add(Notice.RUNNER_FAILED, reason="flooded its output")
    notes.add(Notice.PLAIN_EXEC)
    notes.first(Notice.PYTHON_LOST_EARLIER, why="it timed out")
    done = result(Outcome(0, b"", b"warn\n"), notes)
    assert done.notes == (
        "Python state was lost earlier (it timed out); variables, imports and definitions "
        "from before are gone",
        "the command runner flooded its output; it restarts on the next call",
        "ran with docker exec instead",
    )
    assert done.stderr.splitlines()[0] == "warn"
    assert done.stderr.splitlines()[1:] == [f"[{text}]" for text in done.notes]


def test_a_restart_note_sets_the_sandbox_restarted_flag():
    notes = Notes()
    notes.add(Notice.SANDBOX_RESTARTED)
    assert result(Outcome(137, b"", b""), notes).sandbox_restarted
    assert Notice.SANDBOX_RESTARTED in notes


def test_invalid_utf8_output_is_replaced_not_raised():
    done = result(Outcome(0, b"\xff\xfeok", b""))
    assert done.stdout == "\ufffd\ufffdok"


def test_human_sizes_and_why_python_state_went():
    assert [human_bytes(n) for n in (512, 2048, 1536 * 1024, 3 << 30)] == [
        "512 B",
        "2 KiB",
        "1.5 MiB",
        "3 GiB",
    ]
    assert python_lost_reason(Outcome(137, b"", b"", ended=StreamEnd.DEADLINE)) == "it timed out"
    assert python_lost_reason(Outcome(137, b"", b"")) == "it was stopped"
    assert python_lost_reason(Outcome(1, b"", b"")) == "it crashed"
