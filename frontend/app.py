"""The Gradio app: `build_app` wires components to the ChatService (frontend.server mounts it).

Identity: with login on, the user is the logged-in name. Without login there is one local user,
and (APP_CHATS_PER_BROWSER, on by default) each browser sees only the chats it started: the
browser keeps a random id and its current chat's id in localStorage (gr.BrowserState), so a
reload resumes the chat. Every Docker operation goes through the ChatService and its executor.
"""

from __future__ import annotations

import html
import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from agent.events import TurnDone
from agent.service import ChatService, ModelInfo, upload_name
from executor import ExecutorError
from settings import LOCAL_USER, Settings

from .chat_ui import Transcript, is_image, messages_from_history
from .panels import (
    SEARCH_FROM,
    chat_choices,
    examples,
    file_rows,
    mcp_panel,
    network_line,
    servers_panel,
)
from .tabs import TabTracker

logger = logging.getLogger(__name__)

CSS = """
#model-banner .offline, #model-banner .online {border-radius: 6px; padding: 6px 10px;}
#model-banner .offline {background: #fff4d6; border: 1px solid #e0b64a;}
#model-banner .online {background: #e6f4ea; border: 1px solid #5aa469;}
#model-banner .exposed {background: #fde2e1; border: 1px solid #d9534f; border-radius: 6px;
  padding: 6px 10px; margin: 4px 0;}
#model-banner .topline {display: flex; justify-content: space-between; align-items: center;}
.step-ok {color: #2e7d32; font-weight: 600;}
.step-failed, .step-error {color: #c62828; font-weight: 600;}
.step-timed_out {color: #ef6c00; font-weight: 600;}
.step-stopped {color: #616161; font-weight: 600;}
.step-oom {color: #6a1b9a; font-weight: 600;}
#files table {table-layout: auto;}
#files td, #files th {white-space: nowrap;}
"""

# Each example button shows a short title; its full text appears on hover.
HOVER_JS = """
() => {
  const texts = %s;
  const label = () => document.querySelectorAll('button.gallery-item').forEach((b, i) => {
    if (texts[i] && !b.title) { b.title = texts[i]; }
  });
  new MutationObserver(label).observe(document.body, {childList: true, subtree: true});
  label();
}
"""


def page_js(service: ChatService) -> str:
    """Script for the page (given to Gradio's mount): example buttons show their text on hover."""
    return HOVER_JS % json.dumps([e.text for e in examples(service.model.offline)])


def banner(model: ModelInfo) -> str:
    if model.offline:
        return (
            "<div class='offline'><b>Offline model</b>: no AI model is configured. It runs the "
            "code you send (fenced <code>bash</code> or <code>python</code> blocks, or lines "
            "starting with <code>$ </code>). "
            "Set <code>GOOGLE_API_KEY</code> in <code>.env</code> for Gemini.</div>"
        )
    return f"<div class='online'>Model: <b>{html.escape(model.name)}</b></div>"


def header(
    service: ChatService, *, login_required: bool, exposed: bool, model: str | None = None
) -> str:
    """The page header: title, the chat's model, a logout link, and a loud warning when the app
    is reachable off this machine without login (APP_ALLOW_UNAUTHENTICATED)."""
    logout = "<a href='/logout' id='logout'>Log out</a>" if login_required else ""
    warning = (
        "<div class='exposed' role='alert'><b>Warning:</b> this app is reachable from the "
        "network without login: anyone who can open it can run code here. Add users with "
        "<code>mcp-code-executor user add NAME</code>.</div>"
        if exposed
        else ""
    )
    shown = next((m for m in service.models if m.name == model), service.model)
    return (
        "<div class='topline'><h2 style='margin:0'>Code sandbox chat</h2>"
        f"{logout}</div>{warning}{banner(shown)}"
    )


def build_app(
    service: ChatService, settings: Settings, *, login_required: bool = False, exposed: bool = False
) -> gr.Blocks:
    """The Blocks app; `frontend.server` mounts it behind the login layer."""
    tabs = TabTracker(service, settings.tab_close_grace_s)
    download_root = Path(tempfile.mkdtemp(prefix="mce-downloads-"))
    per_browser = settings.chats_per_browser and not login_required
    demo_examples = examples(service.model.offline, [s.name for s in service.mcp_servers()])

    def user_of(request: gr.Request | None) -> str:
        return (request.username if request is not None else None) or LOCAL_USER

    def browser_of(identity: dict | None) -> str | None:
        return (identity or {}).get("browser") if per_browser else None

    def page_header(model: str | None = None) -> str:
        return header(service, login_required=login_required, exposed=exposed, model=model)

    async def chat_list(user: str, identity: dict | None, query: str = "") -> tuple[Any, ...]:
        chats = await service.list_sessions(user, browser=browser_of(identity))
        search = gr.update(visible=len(chats) > SEARCH_FROM or bool(query))
        return chats, search, chat_choices(chats, query)

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

    def mcp_update(request: gr.Request, session: str) -> str:
        base = str(request.request.base_url).rstrip("/") if request.request else ""
        return mcp_panel(f"{base}/mcp/", session, login_required=login_required)

    async def show_chat(user: str, session: str, identity: dict, request: gr.Request) -> tuple:
        tabs.opened(request.session_hash, user, session)
        messages = messages_from_history(await service.history(user, session))
        # A chat that never ran anything has no container yet: do not start one to list nothing.
        table, picker = await files_update(user, session if messages else None)
        chats, search, choices = await chat_list(user, identity)
        current = next((c for c in chats if c.session_id == session), None)
        return (
            {**identity, "session": session},
            session,
            messages,
            messages,
            gr.update(choices=choices, value=session),
            search,
            table,
            picker,
            page_header(current.model if current else None),
            gr.update(value=current.title if current else ""),
            mcp_update(request, session),
            session,
            gr.update(visible=False),
        )

    async def on_load(identity: dict | None, request: gr.Request) -> tuple:
        identity = dict(identity or {})
        identity.setdefault("browser", uuid.uuid4().hex)
        user = user_of(request)
        wanted = identity.get("session")
        known = {
            c.session_id for c in await service.list_sessions(user, browser=browser_of(identity))
        }
        if wanted not in known:
            wanted = await service.new_session(user, browser=browser_of(identity))
        return await show_chat(user, wanted, identity, request)

    async def on_new_chat(identity: dict, model: str | None, request: gr.Request) -> tuple:
        user = user_of(request)
        session = await service.new_session(user, model=model, browser=browser_of(identity))
        return await show_chat(user, session, identity, request)

    async def on_pick_chat(
        picked: str | None, current: str | None, identity: dict, request: gr.Request
    ) -> tuple:
        user = user_of(request)
        known = {
            c.session_id for c in await service.list_sessions(user, browser=browser_of(identity))
        }
        return await show_chat(user, picked if picked in known else current, identity, request)

    async def on_search(query: str, session: str, identity: dict, request: gr.Request) -> Any:
        _, _, choices = await chat_list(user_of(request), identity, query)
        shown = {value for _, value in choices}
        return gr.update(choices=choices, value=session if session in shown else None)

    async def on_rename(title: str, session: str, identity: dict, request: gr.Request) -> tuple:
        user = user_of(request)
        await service.rename_chat(user, session, title)
        _, _, choices = await chat_list(user, identity)
        return gr.update(choices=choices, value=session)

    async def on_delete(session: str, identity: dict, request: gr.Request) -> tuple:
        user = user_of(request)
        try:
            await service.delete_chat(user, session)
        except ExecutorError as exc:
            gr.Warning(f"Could not delete the chat's workspace: {exc}")
        chats = await service.list_sessions(user, browser=browser_of(identity))
        after = chats[0].session_id if chats else None
        after = after or await service.new_session(user, browser=browser_of(identity))
        return await show_chat(user, after, identity, request)

    async def on_send(
        message: dict, messages: list, session: str | None, identity: dict, request: gr.Request
    ):
        user = user_of(request)
        if not session:  # sent before the page finished loading: start a chat now
            session = await service.new_session(user, browser=browser_of(identity))
            tabs.opened(request.session_hash, user, session)
        state = (session, {**(identity or {}), "session": session})
        text = (message or {}).get("text", "") or ""
        paths = [Path(p) for p in (message or {}).get("files", []) or []]
        transcript = Transcript(messages)
        transcript.add_user(text)
        if not text.strip() and not paths:
            return
        busy = gr.update(value=None, interactive=False)
        yield transcript.messages, transcript.messages, busy, *state
        files = [(upload_name(p.name), p.read_bytes()) for p in paths]
        async for event in service.stream(user, session, text, files):
            transcript.apply(event)
            if isinstance(event, TurnDone):
                break
            yield transcript.messages, transcript.messages, gr.update(), *state
        ready = gr.update(value=None, interactive=True)
        yield transcript.messages, transcript.messages, ready, *state

    async def on_stop(session: str, request: gr.Request) -> None:
        service.stop(user_of(request), session)

    def servers_update(request: gr.Request) -> str:
        return servers_panel(service.mcp_servers(), user_of(request))

    async def on_refresh(session: str, identity: dict, shown: str, request: gr.Request) -> tuple:
        user = user_of(request)
        table, picker = await files_update(user, session)
        chats, _, choices = await chat_list(user, identity)
        current = next((c.title for c in chats if c.session_id == session), None)
        # The title box follows the first turn's title, never overwriting what someone typed.
        untouched = (shown or "").strip() in {"", "New chat"}
        title_box = gr.update(value=current) if current and untouched else gr.update()
        return table, picker, gr.update(choices=choices, value=session), title_box

    async def on_pick_file(path: str | None, session: str, request: gr.Request) -> tuple:
        if not path:
            return gr.update(value=None), gr.update(value=None, visible=False)
        local = _fresh_dir(download_root, request.session_hash) / upload_name(path)
        try:  # streamed to disk: a big file never sits in memory
            await service.download_to(user_of(request), session, path, local)
        except ExecutorError as exc:
            gr.Warning(str(exc))
            return gr.update(value=None), gr.update(value=None, visible=False)
        shown = (
            gr.update(value=str(local), visible=True)
            if is_image(path)
            else gr.update(value=None, visible=False)
        )
        return gr.update(value=str(local)), shown

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
        head = gr.HTML(page_header(), elem_id="model-banner")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=220):
                with gr.Row():
                    new_chat = gr.Button("New chat", variant="primary", elem_id="new-chat")
                model = gr.Dropdown(
                    label="Model for new chats",
                    choices=[m.name for m in service.models],
                    value=service.model.name,
                    visible=len(service.models) > 1,
                    elem_id="model-choice",
                )
                search = gr.Textbox(
                    placeholder="Search chats",
                    show_label=False,
                    visible=False,
                    elem_id="chat-search",
                )
                chats = gr.Radio(label="Chats", choices=[], elem_id="chats")
                with gr.Accordion("Rename or delete this chat", open=False, elem_id="chat-admin"):
                    title = gr.Textbox(label="Title", elem_id="chat-title")
                    rename = gr.Button("Rename", size="sm", elem_id="rename-chat")
                    delete = gr.Button(
                        "Delete chat…", size="sm", variant="stop", elem_id="delete-chat"
                    )
                    with gr.Group(visible=False, elem_id="confirm-delete") as confirm:
                        gr.Markdown("Delete this chat, its history, its container and its files?")
                        with gr.Row():
                            really = gr.Button(
                                "Delete", variant="stop", size="sm", elem_id="really-delete"
                            )
                            cancel = gr.Button("Cancel", size="sm", elem_id="cancel-delete")
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(elem_id="chatbot", height=560, label="Chat", buttons=["copy"])
                box = gr.MultimodalTextbox(
                    file_count="multiple",
                    sources=["upload"],
                    placeholder=(
                        "A ```bash``` / ```python``` block or `$ command`, or drop files here"
                        if service.model.offline
                        else "Ask anything, or drop files here"
                    ),
                    elem_id="chatbox",
                    show_label=False,
                )
                stop = gr.Button("Stop", variant="stop", elem_id="stop", size="sm")
                gr.Examples(
                    examples=[[{"text": e.text, "files": list(e.files)}] for e in demo_examples],
                    example_labels=[e.title for e in demo_examples],
                    inputs=[box],
                    label="Demo walkthrough (in order; hover for what each sends)",
                )
            with gr.Column(scale=2, min_width=280):
                gr.Markdown("### Workspace `/workspace`")
                refresh = gr.Button("Refresh files", size="sm", elem_id="refresh-files")
                table = gr.Dataframe(
                    headers=["file", "size", "changed"],
                    value=[],
                    interactive=False,
                    elem_id="files",
                    wrap=False,
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
                egress = service.executor.egress
                gr.Markdown(network_line(egress.describe(), egress.enabled), elem_id="network")
                with gr.Accordion("MCP servers (code mode)", open=False, elem_id="servers-panel"):
                    servers = gr.Markdown(elem_id="mcp-servers")
                with gr.Accordion("Connect an MCP client", open=False, elem_id="mcp-panel"):
                    sandbox_id = gr.Textbox(
                        label="This chat's sandbox id",
                        interactive=False,
                        buttons=["copy"],
                        elem_id="sandbox-id",
                    )
                    mcp_help = gr.Markdown(elem_id="mcp-help")

        chat_outputs = [
            identity, session, messages, chatbot, chats, search, table, picker, head, title,
            mcp_help, sandbox_id, confirm,
        ]  # fmt: skip
        demo.load(on_load, [identity], chat_outputs)
        demo.load(servers_update, None, [servers])
        new_chat.click(on_new_chat, [identity, model], chat_outputs)
        chats.input(on_pick_chat, [chats, session, identity], chat_outputs)
        search.change(on_search, [search, session, identity], [chats])
        rename.click(on_rename, [title, session, identity], [chats])
        delete.click(lambda: gr.update(visible=True), None, [confirm])
        cancel.click(lambda: gr.update(visible=False), None, [confirm])
        really.click(on_delete, [session, identity], chat_outputs)
        send = box.submit(
            on_send,
            [box, messages, session, identity],
            [messages, chatbot, box, session, identity],
            concurrency_limit=None,
        )
        send.then(on_refresh, [session, identity, title], [table, picker, chats, title])
        send.then(servers_update, None, [servers])
        stop.click(on_stop, [session], None, concurrency_limit=None)
        refresh.click(on_refresh, [session, identity, title], [table, picker, chats, title])
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
