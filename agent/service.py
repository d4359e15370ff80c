"""ChatService: what the UI calls. Runs turns through the ADK Runner and streams typed events.

Sessions are ADK sessions in SQLite under the data directory, so a restarted app finds its chats
and their history; each session's sandbox is keyed by (user id, session id) and reattaches after
a restart (the executor adopts running containers, and workspaces are volumes). No Gradio here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.models import BaseLlm
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types

from executor import DockerExecutionClient, ExecutorError, FileInfo
from settings import Settings, model_name

from .agent import create_agent
from .events import ChatEvent, ErrorEvent, EventConverter, FilesUploaded, ToolOutput, TurnDone
from .live import LiveOutput
from .tools import sandbox_key

logger = logging.getLogger(__name__)

APP_NAME = "mcp-code-executor"
TITLE_KEY = "title"


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    title: str
    updated: float  # seconds since the epoch


@dataclass(frozen=True)
class ModelInfo:
    name: str
    offline: bool

    @property
    def label(self) -> str:
        if self.offline:
            return "Offline model (runs the code you write; set GOOGLE_API_KEY for Gemini)"
        return f"Model: {self.name}"


def upload_name(name: str) -> str:
    """A plain file name for an upload: no directories, never empty, '.' or '..'."""
    base = PurePosixPath(name.replace("\\", "/")).name.strip()
    return base if base not in {"", ".", ".."} else "upload"


def chat_title(text: str, uploaded: Sequence[tuple[str, int]] = ()) -> str:
    """A short title for a chat: its first line of prose or code, else the first upload's name."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("```"):
            return line[:60]
    return uploaded[0][0].rsplit("/", 1)[-1] if uploaded else "New chat"


class ChatService:
    """One agent, one Runner, one session store; many chats, each with its own sandbox."""

    def __init__(
        self,
        settings: Settings,
        *,
        executor: DockerExecutionClient | None = None,
        model: str | BaseLlm | None = None,
        session_service: BaseSessionService | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor or DockerExecutionClient.from_settings(settings.executor)
        if session_service is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            session_service = SqliteSessionService(str(settings.data_dir / "sessions.db"))
        self.sessions = session_service
        self.live = LiveOutput()
        self.agent = create_agent(settings, self.executor, model=model, live=self.live)
        self.runner = Runner(app_name=APP_NAME, agent=self.agent, session_service=self.sessions)
        name = model.model if isinstance(model, BaseLlm) else (model or model_name(settings))
        self.model = ModelInfo(name=name, offline=name.startswith("offline"))
        self._running: dict[tuple[str, str], asyncio.Event] = {}

    # -- sessions ------------------------------------------------------------------------

    async def new_session(self, user_id: str) -> str:
        session = await self.sessions.create_session(
            app_name=APP_NAME, user_id=user_id, session_id=uuid.uuid4().hex
        )
        return session.id

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        listed = await self.sessions.list_sessions(app_name=APP_NAME, user_id=user_id)
        infos = [
            SessionInfo(s.id, str(s.state.get(TITLE_KEY) or "New chat"), s.last_update_time)
            for s in listed.sessions
        ]
        return sorted(infos, key=lambda s: s.updated, reverse=True)

    async def history(self, user_id: str, session_id: str) -> list[ChatEvent]:
        """The stored turns of a chat as ChatEvents (empty for an unknown session)."""
        session = await self.sessions.get_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )
        if session is None:
            return []
        converter = EventConverter()
        out: list[ChatEvent] = []
        for event in session.events:
            out.extend(converter.convert(event, live=False))
        return out

    def sandbox_key(self, user_id: str, session_id: str) -> str:
        """The executor key of a chat: the one place the UI and MCP get it from."""
        return sandbox_key(user_id, session_id)

    # -- the chat's workspace (the UI never builds executor keys itself) --------------------

    async def workspace_files(self, user_id: str, session_id: str) -> list[FileInfo]:
        return await self.executor.list_files(
            sandbox_key(user_id, session_id), "/workspace", recursive=True
        )

    async def download_to(self, user_id: str, session_id: str, path: str, dest: Path) -> int:
        return await self.executor.download_to(sandbox_key(user_id, session_id), path, dest)

    async def zip_workspace_to(self, user_id: str, session_id: str, dest: Path) -> int:
        return await self.executor.zip_workspace_to(sandbox_key(user_id, session_id), dest)

    async def stop_sandbox(self, user_id: str, session_id: str) -> None:
        """Stop the chat's container (files kept; the next turn starts it again)."""
        await self.executor.stop(sandbox_key(user_id, session_id))

    # -- turns ---------------------------------------------------------------------------

    def is_running(self, user_id: str, session_id: str) -> bool:
        return (user_id, session_id) in self._running

    def stop(self, user_id: str, session_id: str) -> bool:
        """Stop the chat's running turn (its command is killed); False if none was running."""
        abort = self._running.get((user_id, session_id))
        if abort is None:
            return False
        abort.set()
        return True

    async def stream(
        self,
        user_id: str,
        session_id: str,
        text: str,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> AsyncIterator[ChatEvent]:
        """Run one turn; yield its events as they happen, ending with TurnDone."""
        key = (user_id, session_id)
        if key in self._running:
            yield ErrorEvent("A reply is still running in this chat; stop it or wait for it.")
            yield TurnDone()
            return
        abort = self._running[key] = asyncio.Event()
        try:
            async for event in self._turn(user_id, session_id, text, files, abort):
                yield event
        finally:
            self._running.pop(key, None)
        yield TurnDone(stopped=abort.is_set())

    async def _turn(
        self,
        user_id: str,
        session_id: str,
        text: str,
        files: Sequence[tuple[str, bytes]],
        abort: asyncio.Event,
    ) -> AsyncIterator[ChatEvent]:
        session = await self.sessions.get_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )
        if session is None:
            session = await self.sessions.create_session(
                app_name=APP_NAME, user_id=user_id, session_id=session_id
            )
        uploaded: list[tuple[str, int]] = []
        for name, data in files:
            path = f"/workspace/{upload_name(name)}"
            try:
                await self.executor.upload_file(sandbox_key(user_id, session_id), path, data)
            except ExecutorError as exc:
                yield ErrorEvent(f"Could not upload {name}: {exc}")
                continue
            uploaded.append((path, len(data)))
        if uploaded:
            yield FilesUploaded(tuple(uploaded))
        message = text.strip()
        if uploaded:
            listed = ", ".join(f"{path} ({size:,} bytes)" for path, size in uploaded)
            message = f"{message}\n\n[Files uploaded to the sandbox: {listed}]".strip()
        if not message:
            return
        state_delta = None
        if not session.state.get(TITLE_KEY):
            state_delta = {TITLE_KEY: chat_title(text, uploaded)}
        # ADK events and live tool output arrive on one queue, in the order they happen.
        queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()
        key = sandbox_key(user_id, session_id)

        async def run_agent() -> None:
            converter = EventConverter()
            try:
                async for event in self.runner.run_async(
                    user_id=user_id,
                    session_id=session_id,
                    new_message=types.Content(role="user", parts=[types.Part(text=message)]),
                    run_config=RunConfig(streaming_mode=StreamingMode.SSE),
                    state_delta=state_delta,
                    abort_signal=abort,
                ):
                    for chat_event in converter.convert(event):
                        queue.put_nowait(chat_event)
            except Exception as exc:  # the UI must get words, never a stack trace
                logger.exception("turn failed for session %s", session_id)
                queue.put_nowait(ErrorEvent(f"The model call failed: {type(exc).__name__}: {exc}"))
            finally:
                queue.put_nowait(None)

        def on_output(call_id: str, stream: str, text: str) -> None:
            queue.put_nowait(ToolOutput(call_id, stream, text))

        self.live.listen(key, on_output)
        agent_task = asyncio.create_task(run_agent())
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self.live.stop(key)
            if not agent_task.done():
                abort.set()
                agent_task.cancel()

    async def close(self) -> None:
        await self.runner.close()
        await self.executor.aclose(remove_containers=False)
