"""ChatService: what the UI (and MCP) call. Runs turns through the ADK Runner, streams typed events.

Chats are ADK sessions (SQLite in the data directory, or the database `APP_SESSION_DB_URL`
names), so a restarted app, or another replica, finds them with their history; each chat's
sandbox is keyed by (user id, session id) and reattaches after a restart (the executor adopts
running containers, and workspaces are volumes). A chat keeps the model it was started with;
there is one Runner per model offered. No Gradio here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.artifacts import FileArtifactService
from google.adk.events import Event, EventActions
from google.adk.models import BaseLlm
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService
from google.genai import types

from code_mode import app_executor, hub_of
from executor import DockerExecutionClient, ExecutorError, FileInfo, chat_key
from settings import Settings, model_name

from .agent import create_agent
from .events import (
    UPLOADS_KEY,
    ChatEvent,
    ErrorEvent,
    EventConverter,
    FilesUploaded,
    ModelRetrying,
    ToolCallFinished,
    ToolOutput,
    TurnDone,
    upload_note,
)
from .images import IMAGES_KEY
from .live import LiveOutputHub
from .mcp_tools import Signer
from .model_errors import describe_model_error
from .models import RETRY_NOTICE
from .sessions import make_session_service

logger = logging.getLogger(__name__)

APP_NAME = "mcp-code-executor"
TITLE_KEY = "title"
MODEL_KEY = "model"  # the model a chat was started with
BROWSER_KEY = "browser"  # without login: the browser that started the chat
_TITLE_CHARS = 60


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    title: str
    updated: float  # seconds since the epoch
    created: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    offline: bool


def upload_name(name: str) -> str:
    """A plain file name for an upload: no directories, never empty, '.' or '..'."""
    base = PurePosixPath(name.replace("\\", "/")).name.strip()
    return base if base not in {"", ".", ".."} else "upload"


def chat_title(text: str, uploaded: Sequence[tuple[str, int]] = ()) -> str:
    """A short title for a chat: its first line of prose or code, else the first upload's name."""
    for line in text.splitlines():
        line = line.strip().removeprefix("$ ").strip()
        if line and not line.startswith("```"):
            return line[:_TITLE_CHARS]
    return uploaded[0][0].rsplit("/", 1)[-1] if uploaded else "New chat"


def offered_models(settings: Settings) -> list[str]:
    """The model strings a new chat may use: the default first, then APP_EXTRA_MODELS."""
    names = [model_name(settings)]
    for name in (n.strip() for n in settings.extra_models.split(",")):
        if name and name not in names:
            names.append(name)
    return names


class ChatService:
    """The agent, its Runners and the session store; many chats, each with its own sandbox."""

    def __init__(
        self,
        settings: Settings,
        *,
        executor: DockerExecutionClient | None = None,
        model: str | BaseLlm | None = None,
        session_service: BaseSessionService | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor or app_executor(settings)
        self.sessions = session_service or make_session_service(settings)
        # Images the steps made (agent/images.py), kept with the session; shown from here.
        self.artifacts = FileArtifactService(root_dir=settings.data_dir / "artifacts")
        self._image_cache = Path(tempfile.gettempdir()) / "mce-images"
        self.live = LiveOutputHub()
        self._given: BaseLlm | None = model if isinstance(model, BaseLlm) else None
        names = [model.model] if isinstance(model, BaseLlm) else [model] if model else None
        self.models = [
            ModelInfo(name, offline=name.startswith("offline"))
            for name in (names or offered_models(settings))
        ]
        self.model = self.models[0]
        self._runners: dict[str, Runner] = {}
        self._running: dict[tuple[str, str], asyncio.Event] = {}
        self._mcp: tuple[str, Signer] | None = None

    def use_mcp_tools(self, url: str, signer: Signer) -> None:
        """Reach the sandbox tools through the MCP endpoint at `url` (APP_AGENT_TOOLS=mcp);
        call before the first turn."""
        self._mcp = (url, signer)
        self._runners.clear()

    def runner_for(self, model: str | None = None) -> Runner:
        """The Runner of a model offered (the default model's when unknown)."""
        name = model if model in {m.name for m in self.models} else self.model.name
        runner = self._runners.get(name)
        if runner is None:
            agent = create_agent(
                self.settings,
                self.executor,
                model=self._given or name,
                live=self.live,
                mcp=self._mcp,
            )
            runner = Runner(
                app_name=APP_NAME,
                agent=agent,
                session_service=self.sessions,
                artifact_service=self.artifacts,
            )
            self._runners[name] = runner
        return runner

    @property
    def runner(self) -> Runner:
        return self.runner_for(self.model.name)

    # -- chats -----------------------------------------------------------------------------

    async def new_session(
        self, user_id: str, *, model: str | None = None, browser: str | None = None
    ) -> str:
        """A new chat (no container yet: that waits for its first command)."""
        state: dict[str, Any] = {MODEL_KEY: model or self.model.name}
        if browser:
            state[BROWSER_KEY] = browser
        session = await self.sessions.create_session(
            app_name=APP_NAME, user_id=user_id, session_id=uuid.uuid4().hex, state=state
        )
        return session.id

    async def list_sessions(self, user_id: str, *, browser: str | None = None) -> list[SessionInfo]:
        """The user's chats, most recent first; with `browser`, only those that browser started."""
        listed = await self.sessions.list_sessions(app_name=APP_NAME, user_id=user_id)
        infos = [
            SessionInfo(
                s.id,
                str(s.state.get(TITLE_KEY) or "New chat"),
                s.last_update_time,
                float(s.state.get("created") or s.last_update_time),
                str(s.state.get(MODEL_KEY) or ""),
            )
            for s in listed.sessions
            if browser is None or s.state.get(BROWSER_KEY) == browser
        ]
        return sorted(infos, key=lambda s: s.updated, reverse=True)

    async def history(self, user_id: str, session_id: str) -> list[ChatEvent]:
        """The stored turns of a chat as ChatEvents (empty for an unknown session)."""
        session = await self.sessions.get_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )
        if session is None:
            return []
        converter = EventConverter(model=str(session.state.get(MODEL_KEY) or self.model.name))
        out: list[ChatEvent] = []
        for event in session.events:
            for chat_event in converter.convert(event, live=False):
                out.append(await self._with_images(user_id, session_id, chat_event))
        return out

    async def _with_images(self, user_id: str, session_id: str, event: ChatEvent) -> ChatEvent:
        """A finished step with the images it made copied to local files the UI can show."""
        if not isinstance(event, ToolCallFinished) or not event.response.get(IMAGES_KEY):
            return event
        folder = self._image_cache / hashlib.sha256(f"{user_id}\0{session_id}".encode()).hexdigest()
        files = []
        for image in event.response[IMAGES_KEY]:
            name, version = str(image.get("artifact", "")), image.get("version")
            local = folder / f"v{version}" / PurePosixPath(name).name
            if not local.exists():
                part = await self.artifacts.load_artifact(
                    app_name=APP_NAME,
                    user_id=user_id,
                    session_id=session_id,
                    filename=name,
                    version=version,
                )
                if part is None or part.inline_data is None or part.inline_data.data is None:
                    continue
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(part.inline_data.data)
            files.append(str(local))
        return dataclasses.replace(event, images=tuple(files))

    async def rename_chat(self, user_id: str, session_id: str, title: str) -> bool:
        """Give a chat a title of the person's choosing; False for an unknown chat."""
        title = " ".join(title.split())[:_TITLE_CHARS] or "New chat"
        session = await self.sessions.get_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )
        if session is None:
            return False
        event = Event(
            author="user",
            invocation_id=f"rename-{uuid.uuid4().hex}",
            actions=EventActions(state_delta={TITLE_KEY: title}),
        )
        await self.sessions.append_event(session, event)
        return True

    async def delete_chat(self, user_id: str, session_id: str) -> None:
        """Delete a chat: its history, its images, its container and its workspace."""
        self.stop(user_id, session_id)
        await self.executor.delete_session(chat_key(user_id, session_id))
        scope = {"app_name": APP_NAME, "user_id": user_id, "session_id": session_id}
        for name in await self.artifacts.list_artifact_keys(**scope):
            await self.artifacts.delete_artifact(filename=name, **scope)
        await self.sessions.delete_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )

    # -- the chat's workspace (the UI never builds executor keys itself) --------------------

    def mcp_servers(self) -> list[Any]:
        """Code mode's servers with their state (empty without code mode); starts nothing."""
        hub = hub_of(self.executor)
        return hub.statuses() if hub is not None else []

    async def workspace_files(self, user_id: str, session_id: str) -> list[FileInfo]:
        return await self.executor.list_files(
            chat_key(user_id, session_id), "/workspace", recursive=True
        )

    async def download_to(self, user_id: str, session_id: str, path: str, dest: Path) -> int:
        return await self.executor.download_to(chat_key(user_id, session_id), path, dest)

    async def zip_workspace_to(self, user_id: str, session_id: str, dest: Path) -> int:
        return await self.executor.zip_workspace_to(chat_key(user_id, session_id), dest)

    async def stop_sandbox(self, user_id: str, session_id: str) -> None:
        """Stop the chat's container (files kept; the next turn starts it again)."""
        await self.executor.stop(chat_key(user_id, session_id))

    # -- turns -----------------------------------------------------------------------------

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

    async def _upload(
        self, user_id: str, session_id: str, files: Sequence[tuple[str, bytes]]
    ) -> tuple[list[tuple[str, int]], list[ChatEvent]]:
        uploaded: list[tuple[str, int]] = []
        problems: list[ChatEvent] = []
        for name, data in files:
            path = f"/workspace/{upload_name(name)}"
            try:
                await self.executor.upload_file(chat_key(user_id, session_id), path, data)
            except ExecutorError as exc:
                problems.append(ErrorEvent(f"Could not upload {name}: {exc}"))
                continue
            uploaded.append((path, len(data)))
        return uploaded, problems

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
                app_name=APP_NAME,
                user_id=user_id,
                session_id=session_id,
                state={MODEL_KEY: self.model.name},
            )
        uploaded, problems = await self._upload(user_id, session_id, files)
        for problem in problems:
            yield problem
        if uploaded:
            yield FilesUploaded(tuple(uploaded))
        parts = [types.Part(text=text.strip())] if text.strip() else []
        if uploaded:
            parts.append(types.Part(text=upload_note(uploaded)))
        if not parts:
            return
        state_delta: dict[str, Any] = {}
        if not session.state.get(TITLE_KEY):
            state_delta[TITLE_KEY] = chat_title(text, uploaded)
            state_delta["created"] = time.time()
        if uploaded:
            state_delta[UPLOADS_KEY] = [[path, size] for path, size in uploaded]
        model = str(session.state.get(MODEL_KEY) or self.model.name)
        runner = self.runner_for(model)
        # ADK events, live tool output and retry notices share one queue, in order.
        queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()
        key = chat_key(user_id, session_id)

        async def run_agent() -> None:
            converter = EventConverter(model=model)
            RETRY_NOTICE.set(lambda delay, why: queue.put_nowait(ModelRetrying(delay, why)))
            try:
                async for event in runner.run_async(
                    user_id=user_id,
                    session_id=session_id,
                    new_message=types.Content(role="user", parts=parts),
                    run_config=RunConfig(streaming_mode=StreamingMode.SSE),
                    state_delta=state_delta or None,
                    abort_signal=abort,
                ):
                    for chat_event in converter.convert(event):
                        queue.put_nowait(await self._with_images(user_id, session_id, chat_event))
                empty = None if abort.is_set() else converter.empty_reply()
                if empty is not None:
                    logger.info("model returned an empty reply in session %s", session_id)
                    queue.put_nowait(empty)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if abort.is_set():
                    logger.info("turn of session %s stopped by the user", session_id)
                elif converter.errors:  # ADK reported it as an event already: say it once
                    logger.warning("model call failed for session %s: %s", session_id, exc)
                else:
                    logger.warning("turn failed for session %s", session_id, exc_info=exc)
                    queue.put_nowait(ErrorEvent(describe_model_error(exc=exc, model=model)))
            finally:
                queue.put_nowait(None)

        def on_output(call_id: str, stream: str, chunk: str) -> None:
            queue.put_nowait(ToolOutput(call_id, stream, chunk))

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
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task  # never left pending

    async def close(self, *, executor: bool = True) -> None:
        """Close the runners (their toolsets) and the session store; the executor too unless
        it is shared (`executor=False`)."""
        for runner in self._runners.values():
            await runner.close()
        self._runners.clear()
        close_sessions = getattr(self.sessions, "close", None)
        if close_sessions is not None:
            await close_sessions()
        if executor:
            await self.executor.aclose(remove_containers=False)
