"""Agent pieces without Docker: runnability, the offline model's parsing, clipping, skills."""

from __future__ import annotations

import logging

import pytest

from agent.offline import describe_result, plan_calls
from agent.service import upload_name
from agent.skills import load_skills
from executor import chat_key, split_key
from executor.text import clip
from settings import PROJECT_ROOT
from tool_surface import TOOL_NAMES


def test_root_agent_loads_with_the_sandbox_tools_and_skills():
    from google.adk.agents import LlmAgent

    from agent.agent import root_agent
    from agent.skills import SandboxSkillToolset

    assert isinstance(root_agent, LlmAgent)
    names = [t.__name__ for t in root_agent.tools if callable(t) and hasattr(t, "__name__")]
    assert tuple(names) == TOOL_NAMES
    assert any(isinstance(t, SandboxSkillToolset) for t in root_agent.tools)


def test_offline_model_is_resolved_by_name():
    from google.adk.models.registry import LLMRegistry

    from agent import offline

    offline.register()
    assert LLMRegistry.resolve("offline") is offline.OfflineLlm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```bash\nls -la\n```", [("execute_bash", {"command": "ls -la"})]),
        ("run:\n```sh\necho a\necho b\n```", [("execute_bash", {"command": "echo a\necho b"})]),
        (
            "```python\nprint('hi')\n```",
            [("run_python", {"code": "print('hi')"})],
        ),
        (
            "$ whoami\ntext\n$ pwd",
            [("execute_bash", {"command": "whoami"}), ("execute_bash", {"command": "pwd"})],
        ),
        ("/files", [("list_files", {"path": "/workspace"})]),
        ("/files /tools\n\n[Files uploaded...]", [("list_files", {"path": "/tools"})]),
        ("/tools", [("list_tools", {})]),
        ("hello there", []),
        ("```\n\n```", []),
    ],
)
def test_offline_model_plans_the_calls_the_message_asks_for(text, expected):
    assert plan_calls(text) == expected


def test_offline_summary_shows_exit_code_and_output():
    text = describe_result(
        "execute_bash",
        {"command": "false"},
        {"status": "ok", "exit_code": 1, "stdout": "", "stderr": "bad\n", "duration_s": 0.1},
    )
    assert "exited with code 1" in text
    assert "bad" in text
    assert "failed" in describe_result(
        "read_file", {}, {"status": "error", "error": "no such file", "hint": "h"}
    )


def test_clip_keeps_head_and_tail_and_says_how_much_was_cut():
    text = "".join(f"{i}\n" for i in range(10_000))
    clipped, cut = clip(text, 1000)
    assert cut == len(text) - 1000
    assert clipped.startswith("0\n1\n")
    assert clipped.endswith("9999\n")
    assert f"{cut:,} characters cut" in clipped
    assert clip("short", 1000) == ("short", 0)


def test_chat_keys_distinguish_users_and_sessions_on_every_route():
    assert chat_key("a/b", "c") != chat_key("a", "b/c")
    assert split_key(chat_key("a/b", "c")) == ("a/b", "c")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("data.csv", "data.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.txt", "y.txt"),
        ("..", "upload"),
        ("", "upload"),
        ("dir/", "dir"),
    ],
)
def test_upload_names_lose_their_directories(name, expected):
    assert upload_name(name) == expected


def test_chat_titles_skip_code_fences():
    from agent.service import chat_title

    assert chat_title("```python\nprint(1)\n```") == "print(1)"
    assert chat_title("", [("/workspace/sales.csv", 10)]) == "sales.csv"
    assert chat_title("x" * 100) == "x" * 60


def test_invalid_skill_is_logged_and_skipped(tmp_path, caplog):
    good = tmp_path / "good-skill"
    good.mkdir()
    (good / "SKILL.md").write_text("---\nname: good-skill\ndescription: Works.\n---\nBody.\n")
    bad = tmp_path / "Bad_Skill"
    bad.mkdir()
    (bad / "SKILL.md").write_text("---\nname: Bad_Skill\ndescription: x\n---\n")
    no_front = tmp_path / "no-front"
    no_front.mkdir()
    (no_front / "SKILL.md").write_text("just text\n")
    with caplog.at_level(logging.WARNING):
        skills = load_skills(tmp_path)
    assert [s.name for s in skills] == ["good-skill"]
    assert "Bad_Skill" in caplog.text
    assert "no-front" in caplog.text


def test_project_skills_are_valid():
    assert [s.name for s in load_skills(PROJECT_ROOT / "skills")] == ["csv-summary"]
