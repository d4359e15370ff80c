"""The offline model: no API key, no network; it runs the code the person writes.

A real `BaseLlm`, registered with ADK's model registry under the name `offline`, so it goes
through the same Runner, tools and sessions as Gemini. From the last user message it plans tool
calls, makes them one per model turn, then summarises the results the way a real model would:

- a fenced ```bash / ```sh / ```shell block, or a line starting with `$ `, runs as bash;
- a ```python block runs with python3 in the sandbox;
- `/files [path]`, `/tools`, `/skills` list those;
- anything else gets a short reply saying this is the offline model and how to set up a real one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

from google.adk.models import BaseLlm, LlmRequest, LlmResponse
from google.adk.models.registry import LLMRegistry
from google.genai import types

from executor.text import fence

from .events import upload_paths

OFFLINE_MODEL = "offline"

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_BASH_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}
_PYTHON_LANGS = {"python", "py", "python3"}
_USAGE = types.GenerateContentResponseUsageMetadata(
    prompt_token_count=0, candidates_token_count=0, total_token_count=0
)
HELP_TEXT = (
    "I'm the **offline model**: no AI model is configured, so I run the code you write in "
    "this chat's sandbox and show you the results.\n\n"
    "- Send a fenced ```bash``` or ```python``` block, or a line starting with `$ `.\n"
    "- `/files` lists /workspace, `/tools` the tool modules, `/skills` the skills.\n\n"
    "To chat with a real model, set `GOOGLE_API_KEY` (Gemini) in `.env`, or `APP_MODEL` to any "
    "model ADK supports, and restart the app."
)


def plan_calls(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls a user message asks for, in order."""
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    if first_line.startswith("/"):
        word, _, rest = first_line.partition(" ")
        if word == "/files":
            return [("list_files", {"path": rest.strip() or "/workspace"})]
        if word == "/tools":
            return [("list_tools", {})]
        if word == "/skills":
            return [
                (
                    "execute_bash",
                    {"command": "grep -h -E '^(name|description):' /skills/*/SKILL.md"},
                )
            ]
    calls: list[tuple[str, dict[str, Any]]] = []
    for lang, body in _FENCE_RE.findall(text):
        lang = lang.lower()
        code = body.rstrip("\n")
        if not code.strip():
            continue
        if lang in _PYTHON_LANGS:
            calls.append(("run_python", {"code": code}))
        elif lang in _BASH_LANGS:
            calls.append(("execute_bash", {"command": code}))
    if not calls:
        outside_fences = _FENCE_RE.sub("", text)
        for line in outside_fences.splitlines():
            if line.startswith("$ ") and line[2:].strip():
                calls.append(("execute_bash", {"command": line[2:].strip()}))
    return calls


def describe_result(name: str, args: dict[str, Any], response: dict[str, Any]) -> str:
    """One tool result in words, as a model would report it."""
    if response.get("status") == "error":
        return f"**`{name}` failed:** {response.get('error')}\n\n_{response.get('hint', '')}_"
    if name in ("execute_bash", "run_python"):
        command = args.get("command", "") or args.get("code", "")
        shown = command if len(command) < 200 else command[:200] + " …"
        code = response.get("exit_code")
        verdict = "succeeded" if code == 0 else f"exited with code {code}"
        if response.get("timed_out") or code == 124:
            verdict = "timed out and was killed"
        what = "Ran" if name == "execute_bash" else "Ran Python"
        parts = [
            f"{what} `{shown.splitlines()[0] if shown else ''}`"
            f"{' …' if len(shown.splitlines()) > 1 else ''}: {verdict} "
            f"in {response.get('duration_s', 0):.2f} s."
        ]
        if response.get("stdout"):
            parts.append(fence(response["stdout"]))
        if response.get("stderr"):
            parts.append("stderr:\n" + fence(response["stderr"]))
        if not response.get("stdout") and not response.get("stderr"):
            parts.append("(no output)")
        if response.get("note"):
            parts.append(f"_{response['note']}_")
        return "\n\n".join(parts)
    if name == "list_files":
        entries = response.get("entries", [])
        if not entries:
            return f"`{response.get('path')}` is empty."
        rows = "\n".join(f"| `{e['name']}` | {e['size']:,} | {e['modified']} |" for e in entries)
        header = "| name | bytes | modified |\n|---|---:|---|"
        return f"Files in `{response.get('path')}`:\n\n{header}\n{rows}"
    if name == "list_tools":
        modules = response.get("modules", {})
        listed = "\n".join(
            f"- `{module}`\n" + "\n".join(f"  - `{line}`" for line in lines)
            for module, lines in modules.items()
        )
        listed = listed or "(none)"
        usage = "Import them in Python: `from tools.example import greet`."
        return f"Tool modules in /tools:\n\n{listed}\n\n{usage}"
    return fence(str(response))


def _last_user_turn(contents: list[types.Content]) -> tuple[str, list[types.Part]]:
    """The last message the person typed, and the function responses that came after it."""
    responses: list[types.Part] = []
    for content in reversed(contents):
        parts = content.parts or []
        texts = [p.text for p in parts if p.text and not p.thought]
        if content.role == "user" and texts and not any(p.function_response for p in parts):
            return "\n".join(texts), list(reversed(responses))
        responses.extend(p for p in reversed(parts) if p.function_response)
    return "", list(reversed(responses))


class OfflineLlm(BaseLlm):
    """Runs what the user writes, one tool call per model turn, then summarises."""

    model: str = OFFLINE_MODEL

    @classmethod
    def supported_models(cls) -> list[str]:
        return [r"offline(-[a-z0-9-]+)?"]

    @property
    def capabilities(self):  # declared so ADK does not guess from the name
        from google.adk.models._capabilities import LlmCapabilities

        return LlmCapabilities(output_schema_and_tools=False)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        text, responses = _last_user_turn(list(llm_request.contents or []))
        plan = plan_calls(text)
        if len(responses) < len(plan):
            name, args = plan[len(responses)]
            call = types.Part(function_call=types.FunctionCall(name=name, args=args))
            yield LlmResponse(
                content=types.Content(role="model", parts=[call]), usage_metadata=_USAGE
            )
            return
        if plan:
            reply = "\n\n".join(
                describe_result(name, args, dict(part.function_response.response or {}))
                for (name, args), part in zip(plan, responses, strict=False)
            )
        elif (listed := upload_paths(text)) is not None:
            reply = (
                f"Saved in the sandbox: {listed}. I'm the offline model, so send code to work "
                "with them, for example:\n\n```python\nimport pandas as pd\n"
                "df = pd.read_csv('/workspace/<file>.csv')\nprint(df.describe())\n```"
            )
        else:
            reply = HELP_TEXT
        if stream:
            for piece in re.findall(r"\S+\s*|\s+", reply):
                yield LlmResponse(
                    content=types.Content(role="model", parts=[types.Part(text=piece)]),
                    partial=True,
                )
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=reply)]),
            partial=False,
            turn_complete=True,
            usage_metadata=_USAGE,
        )


def register() -> None:
    """Make the model string "offline" resolve to OfflineLlm (idempotent)."""
    LLMRegistry.register(OfflineLlm)
