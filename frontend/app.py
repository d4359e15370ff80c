"""The Gradio app: build_app() wires components to the ChatService; main() is the composition root.

Identity: with login on, the user is the logged-in name; without, one local user. The browser
keeps the id of its current chat in localStorage (gr.BrowserState), so a reload resumes it. Every
Docker operation goes through the agent's ChatService and its executor.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from agent.events import TurnDone
from agent.service import ChatService, upload_name
from executor import ExecutorError
from settings import PROJECT_ROOT, Settings

from .chat_ui import Transcript, file_rows, is_image, messages_from_history
from .users import LOCAL_USER

logger = logging.getLogger(__name__)

SAMPLE_CSV = PROJECT_ROOT / "samples" / "sales.csv"
CSS = """
#model-banner .offline, #model-banner .online {border-radius: 6px; padding: 6px 10px;}
#model-banner .offline {background: #fff4d6; border: 1px solid #e0b64a;}
#model-banner .exposed {background: #fde2e1; border: 1px solid #d9534f; border-radius: 6px;
  padding: 6px 10px; margin: 4px 0;}
#model-banner .topline {display: flex; justify-content: space-between; align-items: center;}
#model-banner .online {background: #e6f4ea; border: 1px solid #5aa469;}
"""


def examples() -> list[dict[str, Any]]:
    """The demo walkthrough, in order; each works with the offline model and no network."""
    return [
        {"text": "$ uname -srm && python3 --version && whoami && pwd", "files": []},
        {
            "text": "```python\nimport pandas as pd\ndf = pd.read_csv('/workspace/sales.csv')\n"
            "print(df.describe())\nprint(df.groupby('region')['revenue'].sum().round(2))\n```",
            "files": [str(SAMPLE_CSV)],
        },
        {
            "text": "```python\nimport matplotlib.pyplot as plt  # df is still here from before\n"
            "ax = df.groupby('date')['revenue'].sum().plot(title='Revenue per week')\n"
            "plt.savefig('/workspace/revenue.png')\nprint('saved /workspace/revenue.png')\n```",
            "files": [],
        },
        {
            "text": "```bash\npython3 /skills/csv-summary/scripts/summarize.py "
            "/workspace/sales.csv --chart /workspace/sales_chart.png\n```",
            "files": [],
        },
        {"text": "/files", "files": []},
    ]


def banner(service: ChatService) -> str:
    if service.model.offline:
        return (
            "<div class='offline'><b>Offline model</b>: no AI model is configured. It runs the "
            "code you send (fenced <code>bash</code> or <code>python</code> blocks, or lines "
            "starting with <code>$ </code>). "
            "Set <code>GOOGLE_API_KEY</code> in <code>.env</code> for Gemini.</div>"
        )
    return f"<div class='online'>Model: <b>{service.model.name}</b></div>"


class _Tabs:
    """Which chat each open tab shows, so a closed tab's sandbox can be stopped after a grace."""

    def __init__(self, service: ChatService, grace_s: float) -> None:
        self.service = service
        self.grace_s = grace_s
        self.by_tab: dict[str, tuple[str, str]] = {}
        self._timers: dict[tuple[str, str], asyncio.Task] = {}

    def opened(self, tab: str, user: str, session: str) -> None:
        self.by_tab[tab] = (user, session)
        timer = self._timers.pop((user, session), None)
        if timer is not None:
            timer.cancel()

    def closed(self, tab: str) -> None:
        chat = self.by_tab.pop(tab, None)
        if chat is None or chat in self.by_tab.values():
            return
        self._timers[chat] = asyncio.get_running_loop().create_task(self._stop_later(chat))

    async def _stop_later(self, chat: tuple[str, str]) -> None:
        await asyncio.sleep(self.grace_s)
        self._timers.pop(chat, None)
        if chat in self.by_tab.values() or self.service.is_running(*chat):
            return
        try:
            await self.service.stop_sandbox(*chat)
            logger.info("stopped the sandbox of a closed tab's chat")
        except ExecutorError as exc:
            logger.warning("could not stop a closed tab's sandbox: %s", exc)


def header(service: ChatService, *, login_required: bool, exposed: bool) -> str:
    """The page header: title, the active model, a logout link, and a loud warning when the app
    is reachable off this machine without login (APP_ALLOW_UNAUTHENTICATED)."""
    logout = "<a href='/logout' id='logout'>Log out</a>" if login_required else ""
    warning = (
        "<div class='exposed' role='alert'><b>Warning:</b> this app is reachable from the "
        "network without login: anyone who can open it can run code here. Add users with "
        "<code>mcp-code-executor user add NAME</code>.</div>"
        if exposed
        else ""
    )
    return (
        "<div class='topline'><h2 style='margin:0'>Code sandbox chat</h2>"
        f"{logout}</div>{warning}{banner(service)}"
    )


def build_app(
    service: ChatService, settings: Settings, *, login_required: bool = False, exposed: bool = False
) -> gr.Blocks:
    """The Blocks app; `frontend.server` mounts it behind the login layer."""
    tabs = _Tabs(service, settings.tab_close_grace_s)
    download_root = Path(tempfile.mkdtemp(prefix="mce-downloads-"))

    def user_of(request: gr.Request | None) -> str:
        return (request.username if request is not None else None) or LOCAL_USER

    async def session_choices(user: str) -> list[tuple[str, str]]:
        infos = await service.list_sessions(user)
        return [
            (
                f"{info.title}  ·  {time.strftime('%b %d %H:%M', time.localtime(info.updated))}",
                info.session_id,
            )
            for info in infos
        ]

    async def files_update(user: str, session: str | None) -> tuple[Any, Any]:
        if not session:
            return gr.update(value=[]), gr.update(choices=[], value=None)
        try:
            entries = await service.workspace_files(user, session)
        except ExecutorError as exc:
            gr.Warning(f"Could not list the workspace: {exc}")
            return gr.update(), gr.update()
        rows = file_rows(entries)
        return gr.update(value=rows), gr.update(choices=[row[0] for row in rows], value=None)

    async def show_chat(user: str, session: str, tab: str) -> tuple:
        tabs.opened(tab, user, session)
        messages = messages_from_history(await service.history(user, session))
        table, picker = await files_update(user, session)
        choices = await session_choices(user)
        return (
            {"session": session},
            session,
            messages,
            messages,
            gr.update(choices=choices, value=session),
            table,
            picker,
        )

    async def on_load(identity: dict | None, request: gr.Request) -> tuple:
        user = user_of(request)
        wanted = (identity or {}).get("session")
        known = {s.session_id for s in await service.list_sessions(user)}
        session = wanted if wanted in known else await service.new_session(user)
        return await show_chat(user, session, request.session_hash)

    async def on_new_chat(request: gr.Request) -> tuple:
        user = user_of(request)
        return await show_chat(user, await service.new_session(user), request.session_hash)

    async def on_pick_chat(picked: str | None, current: str | None, request: gr.Request) -> tuple:
        user = user_of(request)
        known = {s.session_id for s in await service.list_sessions(user)}
        session = picked if picked in known else current
        return await show_chat(user, session, request.session_hash)

    async def on_send(message: dict, messages: list, session: str | None, request: gr.Request):
        user = user_of(request)
        if not session:  # sent before the page finished loading: start a chat now
            session = await service.new_session(user)
            tabs.opened(request.session_hash, user, session)
        state = (session, {"session": session})
        text = (message or {}).get("text", "") or ""
        paths = [Path(p) for p in (message or {}).get("files", []) or []]
        transcript = Transcript(messages)
        transcript.add_user(text)
        if not text.strip() and not paths:
            return
        yield (
            transcript.messages,
            transcript.messages,
            gr.update(value=None, interactive=False),
            *state,
        )
        files = [(upload_name(p.name), p.read_bytes()) for p in paths]
        async for event in service.stream(user, session, text, files):
            if isinstance(event, TurnDone):
                transcript.apply(event)
                break
            transcript.apply(event)
            yield transcript.messages, transcript.messages, gr.update(), *state
        yield (
            transcript.messages,
            transcript.messages,
            gr.update(value=None, interactive=True),
            *state,
        )

    async def on_stop(session: str, request: gr.Request) -> None:
        service.stop(user_of(request), session)

    async def on_refresh(session: str, request: gr.Request) -> tuple:
        user = user_of(request)
        table, picker = await files_update(user, session)
        return table, picker, gr.update(choices=await session_choices(user), value=session)

    async def on_pick_file(path: str | None, session: str, request: gr.Request) -> tuple:
        if not path:
            return gr.update(value=None), gr.update(value=None, visible=False)
        local = _fresh_dir(download_root, request.session_hash) / upload_name(path)
        try:  # streamed to disk: a big file never sits in memory
            await service.download_to(user_of(request), session, path, local)
        except ExecutorError as exc:
            gr.Warning(str(exc))
            return gr.update(value=None), gr.update(value=None, visible=False)
        preview = (
            gr.update(value=str(local), visible=True)
            if is_image(path)
            else gr.update(value=None, visible=False)
        )
        return gr.update(value=str(local)), preview

    async def on_zip(session: str, request: gr.Request) -> Any:
        local = _fresh_dir(download_root, request.session_hash) / "workspace.zip"
        try:
            await service.zip_workspace_to(user_of(request), session, local)
        except ExecutorError as exc:
            gr.Warning(str(exc))
            return gr.update(value=None)
        return gr.update(value=str(local))

    async def on_unload(request: gr.Request) -> None:
        tabs.closed(request.session_hash)

    with gr.Blocks(title="Code sandbox chat") as demo:
        identity = gr.BrowserState({"session": None}, storage_key="mce_identity")
        session = gr.State(None)
        messages = gr.State([])
        gr.HTML(
            header(service, login_required=login_required, exposed=exposed),
            elem_id="model-banner",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=200):
                new_chat = gr.Button("New chat", variant="primary", elem_id="new-chat")
                chats = gr.Radio(label="Chats", choices=[], elem_id="chats")
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(elem_id="chatbot", height=560, label="Chat", buttons=["copy"])
                box = gr.MultimodalTextbox(
                    file_count="multiple",
                    sources=["upload"],
                    placeholder="Message, ```bash``` / ```python``` block, or drop files here",
                    elem_id="chatbox",
                    show_label=False,
                )
                stop = gr.Button("Stop", variant="stop", elem_id="stop", size="sm")
                gr.Examples(examples=examples(), inputs=[box], label="Demo walkthrough (in order)")
            with gr.Column(scale=2, min_width=260):
                gr.Markdown("### Workspace `/workspace`")
                refresh = gr.Button("Refresh files", size="sm", elem_id="refresh-files")
                table = gr.Dataframe(
                    headers=["file", "size", "modified"],
                    value=[],
                    interactive=False,
                    elem_id="files",
                    wrap=True,
                )
                picker = gr.Dropdown(
                    label="Download or preview a file", choices=[], elem_id="file-picker"
                )
                download = gr.File(label="Download", elem_id="download", interactive=False)
                preview = gr.Image(
                    label="Preview", visible=False, elem_id="preview", interactive=False
                )
                zip_button = gr.Button(
                    "Download the whole workspace (.zip)", size="sm", elem_id="zip"
                )

        chat_outputs = [identity, session, messages, chatbot, chats, table, picker]
        demo.load(on_load, [identity], chat_outputs)
        new_chat.click(on_new_chat, None, chat_outputs)
        chats.input(on_pick_chat, [chats, session], chat_outputs)
        send = box.submit(
            on_send,
            [box, messages, session],
            [messages, chatbot, box, session, identity],
            concurrency_limit=None,
        )
        send.then(on_refresh, [session], [table, picker, chats])
        stop.click(on_stop, [session], None, concurrency_limit=None)
        refresh.click(on_refresh, [session], [table, picker, chats])
        picker.input(on_pick_file, [picker, session], [download, preview])
        zip_button.click(on_zip, [session], [download])
        demo.unload(on_unload)
    return demo


def _fresh_dir(root: Path, tab: str) -> Path:
    """A per-tab folder for files being downloaded; the previous download's files go."""
    folder = root / "".join(c for c in tab if c.isalnum())[:40]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
