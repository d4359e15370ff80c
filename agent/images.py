"""Images a step makes, kept with the chat: shown inline under the step, and shown to the model.

After each command-like tool call (bash, Python, a skill's script) the chat's /workspace is
listed; every image created or changed since the call began (png, jpg, gif, svg, webp, under a
size cap) is saved as an ADK artifact of the session, and the tool's reply names it. The chat
shows artifacts, not workspace files, so a reloaded chat shows the same pictures even after the
files changed. Models that read images get them as image parts of the next request.
"""

from __future__ import annotations

import logging
import time
from pathlib import PurePosixPath
from typing import Any

from google.adk.agents.callback_context import CallbackContext
from google.adk.models import LlmRequest
from google.adk.tools import ToolContext
from google.genai import types

from executor import DockerExecutionClient, ExecutorError, chat_key

from .events import is_mcp_result, tool_response

logger = logging.getLogger(__name__)

IMAGES_KEY = "images"  # in a tool's reply: [{"path", "artifact", "version", "mime"}]
MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
WATCHED_TOOLS = frozenset({"execute_bash", "run_python", "run_skill_script"})


def mime_of(path: str) -> str | None:
    return MIME_TYPES.get(PurePosixPath(path).suffix.lower())


class ImageCollector:
    """ADK tool and model callbacks (one per agent) that collect and show the images."""

    def __init__(
        self,
        executor: DockerExecutionClient,
        *,
        max_bytes: int = 2 << 20,
        max_images: int = 8,
        to_model: bool = True,
    ) -> None:
        self.executor = executor
        self.max_bytes = max_bytes
        self.max_images = max_images
        self.to_model = to_model
        self._started: dict[str, float] = {}

    async def before_tool(
        self, tool: Any, args: dict[str, Any], tool_context: ToolContext
    ) -> dict | None:
        if tool.name in WATCHED_TOOLS:
            self._started[tool_context.function_call_id or ""] = time.time()
        return None

    async def after_tool(
        self, tool: Any, args: dict[str, Any], tool_context: ToolContext, tool_result: Any
    ) -> dict | None:
        # Replies of MCP tools (APP_AGENT_TOOLS=mcp) become the same dict a direct tool returns:
        # the model sees one shape, once (not the text and the structured copy both).
        normalized = tool_response(raw) if is_mcp_result(raw := tool_result) else None
        started = self._started.pop(tool_context.function_call_id or "", None)
        current = normalized if normalized is not None else raw
        if started is None or not isinstance(current, dict):
            return normalized
        key = chat_key(tool_context.user_id, tool_context.session.id)
        try:
            entries = await self.executor.list_files(key, "/workspace", recursive=True)
        except ExecutorError as exc:
            logger.warning("could not look for images after %s: %s", tool.name, exc)
            return normalized
        fresh = [
            e
            for e in entries
            if not e.is_dir
            and not e.is_symlink
            and mime_of(e.path)
            and e.modified >= started - 0.01
            and 0 < e.size <= self.max_bytes
        ]
        images = []
        for entry in sorted(fresh, key=lambda e: e.modified)[: self.max_images]:
            try:
                data = await self.executor.download_file(key, entry.path)
            except ExecutorError as exc:
                logger.warning("could not read image %s: %s", entry.path, exc)
                continue
            name = entry.path.removeprefix("/workspace/")
            mime = mime_of(entry.path) or "application/octet-stream"
            version = await tool_context.save_artifact(
                name, types.Part.from_bytes(data=data, mime_type=mime)
            )
            images.append({"path": entry.path, "artifact": name, "version": version, "mime": mime})
        if not images:
            return normalized
        return {**current, IMAGES_KEY: images}

    async def before_model(
        self, callback_context: CallbackContext, llm_request: LlmRequest
    ) -> None:
        """Show the images of the last tool round to the model: each becomes an image part of
        the function response that made it (Gemini's multimodal function responses; clients
        that do not know them leave them out)."""
        if not self.to_model or not llm_request.contents:
            return
        for part in llm_request.contents[-1].parts or []:
            reply = part.function_response
            if reply is None or not isinstance(reply.response, dict) or reply.parts:
                continue
            attached = []
            for image in reply.response.get(IMAGES_KEY) or []:
                if image.get("mime") == "image/svg+xml":
                    continue  # models read raster images only
                found = await callback_context.load_artifact(
                    image["artifact"], image.get("version")
                )
                if found is not None and found.inline_data is not None:
                    blob = types.FunctionResponseBlob(
                        mime_type=found.inline_data.mime_type, data=found.inline_data.data
                    )
                    attached.append(types.FunctionResponsePart(inline_data=blob))
            if attached:
                reply.parts = attached
