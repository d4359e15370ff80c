"""The file half of `DockerExecutionClient`: read, write, upload, download, list and zip.

Every operation runs inside the sandbox as the sandbox user (see `sandbox_side/files.py`); big
results (downloads, the workspace zip) are streamed to a file on the host in bounded memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from settings import ExecutorSettings

from . import _validate
from ._exec import FileSink
from .errors import FileTooLargeError
from .results import FileInfo, FileRead

T = TypeVar("T")

_MAX_LIST_ENTRIES = 5000
_BYTES_PER_S = 20 << 20  # file operations get 60 s plus this rate for their size


class WorkspaceFiles:
    """Mixed into DockerExecutionClient, which provides the offload boundary and the audit."""

    settings: ExecutorSettings
    _offload: Callable[..., Awaitable[Any]]
    _audited: Callable[..., Awaitable[Any]]
    _in_sandbox: Callable[..., Any]

    async def _file(
        self,
        key: str,
        op: str,
        args: dict[str, Any],
        *,
        stdin: bytes | None = None,
        stdout_limit: int = 1 << 20,
        stdout_sink: FileSink | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        timeout = 60 + (len(stdin or b"") + stdout_limit) / _BYTES_PER_S
        return await self._offload(
            self._in_sandbox,
            key,
            "file_op",
            op,
            args,
            stdin=stdin,
            stdout_limit=stdout_limit,
            timeout_s=timeout,
            stdout_sink=stdout_sink,
        )

    async def read_text(
        self, user_id: str, file_path: str, offset: int = 0, line_count: int | None = None
    ) -> FileRead:
        """Lines `offset` .. `offset + line_count` of a text file (0-based; all when None), with
        where to continue. Reads /workspace, /tools or /skills; at most `read_file_limit_bytes`."""
        _validate.path(file_path)
        args = {
            "path": file_path,
            "offset": _validate.offset(offset),
            "line_count": _validate.line_count(line_count),
            "limit": self.settings.read_file_limit_bytes,
        }
        data, meta = await self._file(
            user_id, "read", args, stdout_limit=self.settings.read_file_limit_bytes
        )
        return FileRead(
            text=data.decode("utf-8", "replace"),
            offset=offset,
            next_offset=int(meta.get("next_offset", offset)),
            truncated=bool(meta.get("truncated")),
            more=bool(meta.get("more")),
        )

    async def read_file(
        self, user_id: str, file_path: str, offset: int = 0, line_count: int | None = None
    ) -> str:
        """`read_text` as one string: when the byte limit cut the read, a last line says so
        and which offset continues."""
        read = await self.read_text(user_id, file_path, offset, line_count)
        if not read.truncated:
            return read.text
        return read.text + (
            f"\n[... read_file stopped at {self.settings.read_file_limit_bytes:,} bytes; "
            f"continue with offset={read.next_offset} or use line_count ...]"
        )

    async def write_file(self, user_id: str, file_path: str, content: str | bytes) -> None:
        """Write `content` (text as UTF-8, or bytes) to a file under /workspace, byte-exact."""
        await self.upload_file(user_id, file_path, _validate.content(content))

    async def upload_file(self, user_id: str, path: str, data: bytes) -> None:
        """Store `data` at `path` under /workspace (parents created, owned by the sandbox user)."""
        _validate.path(path)
        if len(data) > self.settings.max_file_bytes:
            raise FileTooLargeError(
                f"{path} is {len(data):,} bytes, over the per-file limit of "
                f"{self.settings.max_file_bytes:,} bytes"
            )
        args = {"path": path, "size": len(data), "quota": self.settings.workspace_quota_bytes}
        await self._audited(
            user_id,
            "upload",
            path,
            self._file(user_id, "write", args, stdin=data, stdout_limit=4096),
            bytes_in=len(data),
        )

    async def download_to(self, user_id: str, path: str, dest: str | Path) -> int:
        """Copy a file under /workspace to `dest` on the host in bounded memory; its size."""
        _validate.path(path)
        limit = self.settings.max_file_bytes
        args = {"path": path, "limit": limit}
        return await self._to_file(user_id, "download", path, args, limit, Path(dest))

    async def download_file(self, user_id: str, path: str) -> bytes:
        """The bytes of a file under /workspace (up to the per-file limit). For big files
        prefer `download_to`, which never holds the file in memory."""
        _validate.path(path)
        limit = self.settings.max_file_bytes
        data, _ = await self._audited(
            user_id,
            "download",
            path,
            self._file(user_id, "download", {"path": path, "limit": limit}, stdout_limit=limit),
            bytes_out=lambda r: len(r[0]),
        )
        return data

    async def zip_workspace_to(self, user_id: str, dest: str | Path) -> int:
        """All of /workspace as a zip archive written to `dest` (regular files; symlinks
        skipped), streamed in bounded memory; the archive's size."""
        limit = self.settings.workspace_quota_bytes
        bound = limit + (64 << 20)
        args = {"limit": limit}
        return await self._to_file(user_id, "zip", "/workspace (zip)", args, bound, Path(dest))

    async def download_workspace_zip(self, user_id: str) -> bytes:
        """`zip_workspace_to`, returned as bytes (small workspaces only)."""
        with tempfile.TemporaryDirectory(prefix="mce-zip-") as folder:
            dest = Path(folder) / "workspace.zip"
            await self.zip_workspace_to(user_id, dest)
            return dest.read_bytes()

    async def _to_file(
        self, key: str, op: str, target: str, args: dict[str, Any], limit: int, dest: Path
    ) -> int:
        with dest.open("wb") as file:
            sink = FileSink(file, limit + 1)
            try:
                await self._audited(
                    key,
                    "download",
                    target,
                    self._file(key, op, args, stdout_limit=limit, stdout_sink=sink),
                    bytes_out=lambda _r: sink.written,
                )
            except BaseException:
                file.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dest)
                raise
        return sink.written

    async def list_files(
        self, user_id: str, path: str = "/workspace", *, recursive: bool = False
    ) -> list[FileInfo]:
        """Entries of a directory in /workspace, /tools or /skills (sorted; dirs included)."""
        _validate.path(path)
        args = {"path": path, "recursive": recursive, "max_entries": _MAX_LIST_ENTRIES}
        data, _ = await self._file(user_id, "list", args, stdout_limit=16 << 20)
        return [FileInfo(**entry) for entry in json.loads(data or b"[]")]
