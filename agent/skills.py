"""Skills: loaded from `skills/` with ADK's own loader (invalid ones logged and skipped), and
offered through ADK's SkillToolset, whose scripts run in the calling chat's sandbox."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from google.adk.agents.readonly_context import ReadonlyContext
from google.adk.environment import BaseEnvironment
from google.adk.environment import ExecutionResult as AdkExecutionResult
from google.adk.skills import Skill, list_skills_in_dir, load_skill_from_dir
from google.adk.skills.prompt import format_skills_as_xml
from google.adk.tools import ToolContext
from google.adk.tools.base_tool import BaseTool
from google.adk.tools.base_toolset import BaseToolset
from google.adk.tools.skill_toolset import SkillDiscoveryMode, SkillToolset

from executor import DockerExecutionClient, ExecutorError, chat_key
from executor.text import clip

logger = logging.getLogger(__name__)

SKILLS_IN_SANDBOX = Path("/skills")
# Instead of ADK's default guidance (2 KB, and it forbids reading skill files with other tools,
# which our read_file and list_files offer): the same rules in a quarter of the tokens, sent
# with every model call.
SKILLS_INSTRUCTION = (
    "Skills are folders under /skills: SKILL.md with instructions, maybe scripts/, "
    "references/, assets/. When a skill below fits the request, call `load_skill` first, then "
    "follow its steps in the same turn (loading it does not finish the turn). "
    "`load_skill_resource` reads one of its files; `run_skill_script` runs one of its scripts "
    "in the sandbox. If a skill tool returns an error, report it; do not guess other paths."
)
_CACHED_CHATS = 256


def load_skills(skills_dir: Path) -> list[Skill]:
    """Every valid skill in `skills_dir`; an invalid one is reported in the log and skipped."""
    if not skills_dir.is_dir():
        logger.warning("skills directory %s does not exist; no skills loaded", skills_dir)
        return []

    def report(skill_id: str, error: Exception) -> None:
        logger.warning("skipping invalid skill %r in %s: %s", skill_id, skills_dir, error)

    skills = []
    for skill_id in list_skills_in_dir(skills_dir, on_error=report):
        try:
            skills.append(load_skill_from_dir(skills_dir / skill_id))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            report(skill_id, exc)
    logger.info("loaded %d skill(s): %s", len(skills), ", ".join(s.name for s in skills))
    return skills


class SandboxEnvironment(BaseEnvironment):
    """ADK's environment interface over one chat's sandbox, for `run_skill_script`.

    Skills are mounted read-only at /skills in every sandbox, so ADK finds each script there
    and never needs to copy one in."""

    def __init__(
        self, executor: DockerExecutionClient, key: str, timeout_s: float, output_limit: int
    ) -> None:
        self._executor = executor
        self._key = key
        self._timeout_s = timeout_s
        self._output_limit = output_limit  # as for execute_bash: the model's context stays small

    @property
    def working_dir(self) -> Path:
        return Path("/workspace")

    async def execute(self, command: str, *, timeout: float | None = None) -> AdkExecutionResult:
        try:
            result = await self._executor.run(self._key, command, timeout or self._timeout_s)
        except ExecutorError as exc:
            return AdkExecutionResult(exit_code=126, stderr=str(exc))
        return AdkExecutionResult(
            exit_code=result.exit_code,
            stdout=clip(result.stdout, self._output_limit)[0],
            stderr=clip(result.stderr, self._output_limit)[0],
            timed_out=result.timed_out,
        )

    async def read_file(self, path: Path) -> bytes:
        read = await self._executor.read_text(self._key, str(path))  # FileNotFoundError if none
        return read.text.encode()

    async def write_file(self, path: Path, content: str | bytes) -> None:
        await self._executor.write_file(self._key, str(path), content)


class SandboxSkillToolset(BaseToolset):
    """ADK's SkillToolset, one per chat, each running scripts in that chat's own sandbox.

    A SkillToolset holds a single environment, so this routes by the calling session (the
    pattern ADK's own toolsets use): the catalog, `load_skill` and `load_skill_resource` are
    ADK's, and `run_skill_script` runs the command the model writes in the chat's sandbox."""

    def __init__(
        self,
        skills: list[Skill],
        executor: DockerExecutionClient,
        *,
        output_limit_chars: int,
        script_timeout_s: int = 300,
    ) -> None:
        super().__init__()
        self._skills = skills
        self._executor = executor
        self._timeout_s = script_timeout_s
        self._output_limit = output_limit_chars
        # Sent with every model call; the skills are fixed, so the catalog is formatted once.
        self._instructions = [SKILLS_INSTRUCTION, format_skills_as_xml(skills)] if skills else []
        self._by_key: OrderedDict[str, SkillToolset] = OrderedDict()

    def _toolset(self, key: str) -> SkillToolset:
        toolset = self._by_key.get(key)
        if toolset is None:
            toolset = self._by_key[key] = SkillToolset(
                self._skills,
                environment=SandboxEnvironment(
                    self._executor, key, self._timeout_s, self._output_limit
                ),
                skills_folder=SKILLS_IN_SANDBOX,
                script_timeout=self._timeout_s,
                discovery_mode=SkillDiscoveryMode.EAGER,
            )
            while len(self._by_key) > _CACHED_CHATS:
                self._by_key.popitem(last=False)
        self._by_key.move_to_end(key)
        return toolset

    def _for(self, context: ReadonlyContext) -> SkillToolset:
        return self._toolset(chat_key(context.user_id, context.session.id))

    async def get_tools(self, readonly_context: ReadonlyContext | None = None) -> list[BaseTool]:
        if readonly_context is None:
            return await self._toolset("").get_tools(None)
        return await self._for(readonly_context).get_tools(readonly_context)

    async def process_llm_request(self, *, tool_context: ToolContext, llm_request: Any) -> None:
        """Our short guidance and ADK's catalog of the skills (names and descriptions)."""
        if self._instructions:
            llm_request.append_instructions(self._instructions)
