"""The ADK agent: `root_agent` is what `adk run agent` and `adk web` load.

`create_agent` is the composition point the app and the tests use. `root_agent` is built from
the environment's settings on first access only (PEP 562 module `__getattr__`), so importing this
package reads no `.env`, builds no executor client and starts nothing; the app, which builds its
own agent, never makes a second client.

Bad settings: ADK's loader wraps any exception of the agent module in its own error (a RuntimeError
whose traceback `adk run` prints; `adk web` logs it and answers 500). Under `adk run`, the terminal
chat, the settings' message is printed instead and the process exits with code 2, as `make run`
does; anywhere else (`adk web`, a program importing `root_agent`) the ConfigError is raised.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable
from pathlib import Path

from google.adk.agents import LlmAgent
from google.adk.agents.readonly_context import ReadonlyContext
from google.adk.models import BaseLlm
from google.adk.models.google_llm import Gemini

from code_mode import McpHub, app_executor, hub_of, surface_index
from executor import DockerExecutionClient
from settings import EXIT_CONFIG, ConfigError, Settings, load_settings, refusal
from tool_surface import ToolIndex

from . import offline
from .images import ImageCollector
from .live import LiveOutputHub
from .mcp_tools import Signer, mcp_toolset
from .models import build_model
from .prompts import INSTRUCTION, code_mode_note
from .skills import SandboxSkillToolset, load_skills
from .tools import make_tools, on_tool_error

AGENT_NAME = "sandbox_agent"


def create_agent(
    settings: Settings,
    executor: DockerExecutionClient,
    *,
    model: str | BaseLlm | None = None,
    live: LiveOutputHub | None = None,
    mcp: tuple[str, Signer] | None = None,
    index: ToolIndex | None = None,
) -> LlmAgent:
    """An agent whose tools run in `executor`, with the skills of `settings`' skills folder.

    With `mcp` = (endpoint URL, token signer), the sandbox tools are reached through the app's
    own MCP endpoint instead of in-process (APP_AGENT_TOOLS=mcp); `index` is where the
    in-process discovery tools look (default: the executor's /tools)."""
    offline.register()
    tools: list
    if mcp is not None:
        url, signer = mcp
        max_timeout = executor.settings.max_timeout_s
        tools = [mcp_toolset(url, signer, max_timeout_s=max_timeout, live=live)]
    else:
        index = index or surface_index(executor)
        tools = make_tools(executor, settings.tool_output_limit_chars, live, index)
    skills = load_skills(executor.settings.skills_path)
    if skills:
        tools.append(
            SandboxSkillToolset(
                skills, executor, output_limit_chars=settings.tool_output_limit_chars
            )
        )
    llm = model if isinstance(model, BaseLlm) else build_model(settings, model)
    hub = hub_of(executor)
    images = ImageCollector(
        executor,
        max_bytes=settings.inline_image_max_bytes,
        to_model=isinstance(llm, Gemini),  # multimodal function responses
    )
    return LlmAgent(
        name=AGENT_NAME,
        model=llm,
        description="Runs bash and Python in a private sandbox to answer the user.",
        instruction=INSTRUCTION if hub is None else _with_code_mode(hub),
        tools=tools,
        before_tool_callback=images.before_tool,
        after_tool_callback=images.after_tool,
        before_model_callback=images.before_model,
        on_tool_error_callback=on_tool_error,
    )


def _with_code_mode(hub: McpHub) -> Callable[[ReadonlyContext], str]:
    """The instruction, plus the calling user's MCP modules when they have any."""

    def instruction(context: ReadonlyContext) -> str:
        mine = {s.name for s in hub.config.servers if s.allows(context.user_id)}
        modules = [(s.module, s.tool_count) for s in hub.statuses() if s.name in mine]
        return INSTRUCTION + code_mode_note(modules) if modules else INSTRUCTION

    return instruction


_root_agent: LlmAgent | None = None


def __getattr__(name: str) -> LlmAgent:
    """`root_agent`, built on first access (for `adk run agent` / `adk web`)."""
    global _root_agent
    if name != "root_agent":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _root_agent is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            if _under_adk_run():
                print(refusal(exc), file=sys.stderr)  # noqa: T201 - the CLI's answer
                raise SystemExit(EXIT_CONFIG) from exc
            raise
        executor = app_executor(settings)
        atexit.register(executor.services.close)  # code mode's servers stop with `adk run`
        atexit.register(executor.stop_all)  # `adk run` leaves no sandbox running behind it
        _root_agent = create_agent(settings, executor)
    return _root_agent


def _under_adk_run() -> bool:
    """Whether this is `adk run ...`, whose loader would bury the message in a traceback."""
    program = Path(sys.argv[0])
    adk = program.name == "adk" or program.parts[-3:-1] == ("adk", "cli")  # or python -m
    return adk and sys.argv[1:2] == ["run"]
