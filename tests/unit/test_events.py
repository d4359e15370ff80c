"""ADK events -> typed chat events, and how a finished step is classified (by fields only)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.adk.events import Event
from google.genai import types

from agent.events import (
    ADK_ABORTED,
    ErrorEvent,
    EventConverter,
    TextDelta,
    TextFinal,
    ToolCallFinished,
    ToolCallStarted,
    UserMessage,
    step_outcome,
)
from frontend.chat_ui import Transcript
from settings import PROJECT_ROOT


def event(author: str, *parts: types.Part, partial: bool | None = None, **fields) -> Event:
    return Event(
        author=author,
        content=types.Content(role="model" if author != "user" else "user", parts=list(parts)),
        partial=partial,
        **fields,
    )


def test_a_tool_round_trip_becomes_started_then_finished_with_the_same_id():
    converter = EventConverter()
    call = types.Part(
        function_call=types.FunctionCall(id="c1", name="execute_bash", args={"command": "ls"})
    )
    reply = types.Part(
        function_response=types.FunctionResponse(
            id="c1", name="execute_bash", response={"status": "ok", "exit_code": 0}
        )
    )
    started = converter.convert(event("agent", call))
    finished = converter.convert(event("agent", reply))
    assert started == [ToolCallStarted("c1", "execute_bash", {"command": "ls"})]
    assert isinstance(finished[0], ToolCallFinished)
    assert (finished[0].call_id, finished[0].outcome) == ("c1", "ok")
    assert finished[0].duration_s is not None


def test_text_is_a_delta_while_partial_and_final_after_and_user_text_is_the_user():
    converter = EventConverter()
    assert converter.convert(event("agent", types.Part(text="Hi"), partial=True)) == [
        TextDelta("Hi")
    ]
    assert converter.convert(event("agent", types.Part(text="Hi all"))) == [TextFinal("Hi all")]
    assert converter.convert(event("user", types.Part(text="hello"))) == [UserMessage("hello")]
    thought = types.Part(text="secret plan", thought=True)
    assert converter.convert(event("agent", thought)) == []


def test_a_model_error_is_an_error_event_but_stop_is_not():
    converter = EventConverter()
    failed = Event(author="agent", error_code="UNAVAILABLE", error_message="overloaded")
    [error] = converter.convert(failed)
    assert isinstance(error, ErrorEvent)
    assert "unavailable or overloaded" in error.message
    assert converter.errors == 1
    aborted = Event(author="agent", error_code="INVOCATION_ABORTED", error_message="stop")
    assert converter.convert(aborted) == []


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        ({"status": "ok", "exit_code": 0}, "ok"),
        ({"status": "ok", "exit_code": 3}, "failed"),
        ({"status": "ok", "exit_code": 124, "timed_out": True}, "timed_out"),
        ({"status": "ok", "exit_code": 124}, "failed"),  # exit 124 alone is not a timeout
        ({"status": "ok", "exit_code": 137, "stopped": True}, "stopped"),
        ({"status": "ok", "exit_code": 137, "oom_killed": True}, "oom"),
        ({"status": "error", "error": "no such file"}, "error"),
        ({"error": ADK_ABORTED}, "stopped"),
        ({"error": "missing argument 'command'"}, "error"),
        ({"status": "ok", "entries": []}, "ok"),
    ],
)
def test_step_outcomes_come_from_fields(response, outcome):
    assert step_outcome(response) == outcome


@pytest.mark.parametrize(
    ("response", "label"),
    [
        ({"status": "ok", "exit_code": 137, "stopped": True}, "step-stopped'>stopped</span>"),
        ({"status": "ok", "exit_code": 124, "timed_out": True}, "step-timed_out'>timed out</span>"),
        ({"status": "ok", "exit_code": 137, "oom_killed": True}, "step-oom'>out of memory</span>"),
        ({"error": ADK_ABORTED}, "step-stopped'>stopped</span>"),
        ({"error": "missing argument"}, "step-error'>error</span>"),
    ],
)
def test_the_transcript_labels_steps_honestly(response, label):
    transcript = Transcript()
    transcript.apply(ToolCallStarted("c1", "execute_bash", {"command": "sleep 100"}))
    transcript.apply(ToolCallFinished("c1", "execute_bash", response, 1.0))
    assert transcript.messages[0]["metadata"]["title"].endswith(label)


def test_importing_the_agent_and_ui_modules_has_no_side_effects():
    """No .env is read (settings import python-dotenv only to read it), no executor client is
    built, no thread starts on import."""
    probe = (
        "import os, sys, threading\n"
        "import agent, agent.events, agent.tools, agent.service, frontend.chat_ui, tool_surface\n"
        "assert 'dotenv' not in sys.modules, 'a .env was read'\n"
        "assert 'executor.client' not in sys.modules or not any(\n"
        "    type(o).__name__ == 'DockerExecutionClient' for o in __import__('gc').get_objects())\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "print('clean')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.stdout.strip() == "clean", result.stderr[-2000:]


def test_a_turn_that_ends_without_a_word_from_the_model_is_said():
    converter = EventConverter(model="m")
    assert converter.empty_reply() == ErrorEvent(
        "m returned an empty reply. Send your message again, or rephrase it."
    )
    converter.convert(event("agent", types.Part(text="Looking."), partial=True))
    assert converter.empty_reply() is None
    call = types.FunctionCall(id="c1", name="execute_bash", args={"command": "ls"})
    reply = types.FunctionResponse(id="c1", name="execute_bash", response={"status": "ok"})
    converter.convert(event("agent", types.Part(function_call=call)))
    converter.convert(event("agent", types.Part(function_response=reply)))
    assert converter.empty_reply() is not None  # nothing said after the step
    converter.convert(event("agent", types.Part(text="  ")))
    assert converter.empty_reply() is not None  # blank is nothing
    converter.convert(Event(author="agent", error_code="UNAVAILABLE", error_message="busy"))
    assert converter.empty_reply() is None  # the error said it
