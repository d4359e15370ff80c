"""The ADK agent: `root_agent` is what `adk run agent` and `adk web` load.

`create_agent` is the composition point the app and the tests use; `root_agent` is built from the
environment's settings. Building it touches neither Docker nor the network: the executor connects
on first use.
"""

from __future__ import annotations

from google.adk.agents import LlmAgent
from google.adk.models import BaseLlm
from google.adk.tools.skill_toolset import SkillDiscoveryMode, SkillToolset

from executor import DockerExecutionClient
from settings import Settings, load_settings, model_name

from . import offline
from .live import LiveOutput
from .prompts import INSTRUCTION
from .skills import load_skills
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
        tools.append(SkillToolset(skills, discovery_mode=SkillDiscoveryMode.EAGER))
    return LlmAgent(
        name=AGENT_NAME,
        model=model if model is not None else model_name(settings),
        description="Runs bash and Python in a private sandbox to answer the user.",
        instruction=INSTRUCTION,
        tools=tools,
        on_tool_error_callback=on_tool_error,
    )


_settings = load_settings()
root_agent = create_agent(_settings, DockerExecutionClient.from_settings(_settings.executor))
