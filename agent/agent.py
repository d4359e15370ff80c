"""The ADK agent: `root_agent` is what `adk run agent` and `adk web` load.

`create_agent` is the composition point the app and the tests use. `root_agent` is built from
the environment's settings on first access only (PEP 562 module `__getattr__`), so importing this
package reads no `.env`, builds no executor client and starts nothing; the app, which builds its
own agent, never makes a second client.
"""

from __future__ import annotations

import atexit

from google.adk.agents import LlmAgent
from google.adk.models import BaseLlm

from executor import DockerExecutionClient
from settings import Settings, load_settings

from . import offline
from .live import LiveOutput
from .models import build_model
from .prompts import INSTRUCTION
from .skills import SandboxSkillToolset, load_skills
from .tools import make_tools, on_tool_error

AGENT_NAME = "sandbox_agent"


def create_agent(
    settings: Settings,
    executor: DockerExecutionClient,
    *,
    model: str | BaseLlm | None = None,
    live: LiveOutput | None = None,
) -> LlmAgent:
    """An agent whose tools run in `executor`, with the skills of `settings`' skills folder."""
    offline.register()
    tools: list = make_tools(executor, settings.tool_output_limit_chars, live)
    skills = load_skills(executor.settings.skills_path)
    if skills:
        tools.append(SandboxSkillToolset(skills, executor))
    return LlmAgent(
        name=AGENT_NAME,
        model=model if isinstance(model, BaseLlm) else build_model(settings, model),
        description="Runs bash and Python in a private sandbox to answer the user.",
        instruction=INSTRUCTION,
        tools=tools,
        on_tool_error_callback=on_tool_error,
    )


_root_agent: LlmAgent | None = None


def __getattr__(name: str) -> LlmAgent:
    """`root_agent`, built on first access (for `adk run agent` / `adk web`)."""
    global _root_agent
    if name != "root_agent":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _root_agent is None:
        settings = load_settings()
        executor = DockerExecutionClient.from_settings(settings.executor)
        atexit.register(executor.stop_all)  # `adk run` leaves no sandbox running behind it
        _root_agent = create_agent(settings, executor)
    return _root_agent
