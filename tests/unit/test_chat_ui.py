"""Event -> chat message conversion for the UI, without a server."""

from __future__ import annotations

from types import SimpleNamespace

from agent.events import (
    ErrorEvent,
    FilesUploaded,
    TextDelta,
    TextFinal,
    ToolCallFinished,
    ToolCallStarted,
    TurnDone,
    UserMessage,
)
from frontend.chat_ui import Transcript, messages_from_history, tool_title
from frontend.panels import file_rows, human_size


def test_streamed_text_accumulates_then_the_final_text_replaces_it():
    transcript = Transcript()
    transcript.apply(TextDelta("Hel"))
    transcript.apply(TextDelta("lo"))
    assert transcript.messages == [{"role": "assistant", "content": "Hello"}]
    transcript.apply(TextFinal("Hello world"))
    assert transcript.messages == [{"role": "assistant", "content": "Hello world"}]


def test_tool_step_is_pending_then_done_with_exit_code_duration_and_output():
    transcript = Transcript()
    transcript.apply(ToolCallStarted("c1", "execute_bash", {"command": "ls -la\necho x"}))
    step = transcript.messages[0]
    assert step["metadata"]["status"] == "pending"
    assert step["metadata"]["title"] == "Ran  ls -la …"
    assert "```bash\nls -la\necho x\n```" in step["content"]
    transcript.apply(
        ToolCallFinished(
            "c1",
            "execute_bash",
            {"status": "ok", "exit_code": 2, "stdout": "out", "stderr": "err", "duration_s": 0.5},
            0.52,
        )
    )
    step = transcript.messages[0]
    assert step["metadata"]["status"] == "done"
    assert step["metadata"]["title"].endswith("· <span class='step-failed'>exit 2</span>")
    assert step["metadata"]["duration"] == 0.52
    assert "**exit 2**" in step["content"]
    assert "out" in step["content"]
    assert "stderr:" in step["content"]


def test_long_output_is_shortened_with_a_note():
    transcript = Transcript()
    transcript.apply(ToolCallStarted("c1", "execute_bash", {"command": "seq 1 100000"}))
    transcript.apply(
        ToolCallFinished(
            "c1",
            "execute_bash",
            {"status": "ok", "exit_code": 0, "stdout": "x" * 50_000, "stderr": ""},
        )
    )
    content = transcript.messages[0]["content"]
    assert len(content) < 5_000
    assert "46,000 more characters not shown" in content


def test_tool_error_and_turn_error_read_as_words():
    transcript = Transcript()
    transcript.apply(ToolCallStarted("c1", "read_file", {"path": "x.txt"}))
    transcript.apply(
        ToolCallFinished(
            "c1",
            "read_file",
            {"status": "error", "error": "no such file: x.txt", "hint": "Check the path."},
        )
    )
    transcript.apply(ErrorEvent("The model call failed: ValueError: No API key"))
    assert "**Error:** no such file: x.txt" in transcript.messages[0]["content"]
    assert "Check the path." in transcript.messages[0]["content"]
    assert transcript.messages[0]["metadata"]["title"].endswith("step-error'>error</span>")
    assert transcript.messages[1]["content"].startswith("**Error:** The model call failed")
    assert "Traceback" not in str(transcript.messages)


def test_stopped_turn_closes_pending_steps_and_says_so():
    transcript = Transcript()
    transcript.apply(ToolCallStarted("c1", "execute_bash", {"command": "sleep 30"}))
    transcript.apply(TurnDone(stopped=True))
    assert transcript.messages[0]["metadata"]["status"] == "done"
    assert transcript.messages[0]["metadata"]["title"].endswith(
        "· <span class='step-stopped'>stopped</span>"
    )
    assert transcript.messages[-1]["content"] == "_Stopped._"


def test_text_after_a_tool_call_is_a_new_message():
    transcript = Transcript()
    transcript.apply(TextDelta("Let me look."))
    transcript.apply(ToolCallStarted("c1", "list_files", {"path": "/workspace"}))
    transcript.apply(ToolCallFinished("c1", "list_files", {"status": "ok", "entries": []}))
    transcript.apply(TextDelta("Empty."))
    assert [m["content"] for m in transcript.messages][::2] == ["Let me look.", "Empty."]


def test_history_rebuilds_the_same_messages():
    events = [
        UserMessage("hi"),
        FilesUploaded((("/workspace/a.csv", 2048),)),
        ToolCallStarted("c1", "list_tools", {}),
        ToolCallFinished(
            "c1", "list_tools", {"status": "ok", "modules": {"tools.example": ["greet()"]}}
        ),
        TextFinal("done"),
    ]
    messages = messages_from_history(events)
    assert messages[0] == {"role": "user", "content": "hi"}
    assert "`/workspace/a.csv` (2.0 KB)" in messages[1]["content"]
    assert messages[2]["metadata"]["status"] == "done"
    assert messages[-1] == {"role": "assistant", "content": "done"}


def test_file_rows_and_sizes():
    entries = [
        SimpleNamespace(path="/workspace/a/b.csv", size=1536, modified=0, is_dir=False),
        SimpleNamespace(path="/workspace/a", size=4096, modified=0, is_dir=True),
    ]
    rows = file_rows(entries, now=90)
    assert rows == [["a/b.csv", "1.5 KB", "1 min ago"]]
    assert human_size(10) == "10 B"
    assert human_size(5 * 1024 * 1024) == "5.0 MB"


def test_tool_titles_name_the_main_argument():
    assert tool_title("read_file", {"path": "/workspace/x.txt"}) == "read_file  /workspace/x.txt"
    assert tool_title(
        "read_docstring", {"module_path": "tools.example", "function_name": "greet"}
    ) == ("read_docstring  tools.example.greet")


def test_live_output_shows_in_the_pending_step_then_the_result_replaces_it():
    from agent.events import ToolOutput

    transcript = Transcript()
    transcript.apply(ToolCallStarted("c1", "run_python", {"code": "for i in range(3): print(i)"}))
    assert transcript.messages[0]["metadata"]["title"].startswith("Python  for i in range(3)")
    transcript.apply(ToolOutput("c1", "stdout", "0\n"))
    transcript.apply(ToolOutput("c1", "stdout", "1\n"))
    live = transcript.messages[0]
    assert live["metadata"]["status"] == "pending"
    assert "running…" in live["content"]
    assert "0\n1" in live["content"]
    assert "```python" in live["content"]
    transcript.apply(
        ToolCallFinished(
            "c1",
            "run_python",
            {"status": "ok", "exit_code": 0, "stdout": "0\n1\n2\n", "stderr": ""},
        )
    )
    done = transcript.messages[0]
    assert "running…" not in done["content"]
    assert "0\n1\n2" in done["content"]
    assert done["metadata"]["status"] == "done"


def test_images_a_step_made_appear_right_under_it():
    transcript = Transcript()
    transcript.apply(ToolCallStarted("c1", "run_python", {"code": "plt.show()"}))
    transcript.apply(
        ToolCallFinished(
            "c1",
            "run_python",
            {"status": "ok", "exit_code": 0, "stdout": "", "stderr": ""},
            images=("/tmp/x/figure-1.png", "/tmp/x/figure-2.png"),
        )
    )
    transcript.apply(TextFinal("Here it is."))
    assert [m["content"] for m in transcript.messages[1:3]] == [
        {"path": "/tmp/x/figure-1.png", "alt_text": "figure-1.png"},
        {"path": "/tmp/x/figure-2.png", "alt_text": "figure-2.png"},
    ]
    assert transcript.messages[3]["content"] == "Here it is."


def test_titles_show_commands_literally():
    title = tool_title("execute_bash", {"command": "echo <b>x</b> *y* `z`"})
    assert "<b>" not in title
    assert "&lt;b&gt;" in title
    assert r"\*y\*" in title


def test_a_retry_of_the_model_is_said_in_the_chat():
    from agent.events import ModelRetrying

    transcript = Transcript()
    transcript.apply(ModelRetrying(2.0, "The model is busy (429)."))
    assert "Retrying in 2 s" in transcript.messages[0]["content"]
