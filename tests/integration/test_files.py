"""File operations against real Docker: byte-exact writes, line reads, confinement, quotas."""

from __future__ import annotations

import hashlib
import threading
import time
import zipfile

import pytest

from executor import (
    FileTooLargeError,
    NotARegularFileError,
    PathNotAllowedError,
    QuotaExceededError,
    SandboxFileNotFoundError,
)

pytestmark = pytest.mark.docker

HOSTILE_NAME = 'we\'ird "$(touch pwned)" `id` ;&|\nname ünï 🚀.txt'


async def test_write_is_byte_exact_whatever_the_name_and_content(executor, user_id):
    content = bytes(range(256)) * 40 + "\n$(rm -rf /) 'quotes' \"dq\" ünï\r\n".encode()
    path = f"deep/er/{HOSTILE_NAME}"
    await executor.upload_file(user_id, path, content)
    assert await executor.download_file(user_id, path) == content
    code, out, _ = await executor.execute_bash(
        user_id, "stat -c '%U %s' deep/er/*; test -e pwned && echo PWNED || true"
    )
    assert (code, out) == (0, f"coderunner {len(content)}\n")


async def test_text_write_and_read_round_trip(executor, user_id):
    text = "line one\nzwei ünï\n\ttabbed $(x) `y`\nno newline at end"
    await executor.write_file(user_id, "/workspace/notes/t.txt", text)
    assert await executor.read_file(user_id, "notes/t.txt") == text


async def test_read_file_offset_and_line_count(executor, user_id):
    await executor.execute_bash(user_id, "seq 1 1000 > n.txt")
    assert await executor.read_file(user_id, "n.txt", offset=10, line_count=3) == "11\n12\n13\n"
    assert await executor.read_file(user_id, "n.txt", offset=998) == "999\n1000\n"
    assert await executor.read_file(user_id, "n.txt", offset=5000) == ""


async def test_read_file_of_huge_file_stays_small_and_says_where_to_continue(
    make_executor, user_id
):
    client = make_executor(read_file_limit_bytes=64 * 1024)
    await client.execute_bash(user_id, "seq 1 30000000 > big.txt; ls -l big.txt")  # ~250 MB
    started = time.monotonic()
    tail = await client.read_file(user_id, "big.txt", offset=29_999_998)
    assert tail == "29999999\n30000000\n"
    whole = await client.read_file(user_id, "big.txt")
    assert len(whole) < 70 * 1024
    assert "continue with offset=" in whole
    assert time.monotonic() - started < 30


async def test_missing_file_error_names_the_path(executor, user_id):
    with pytest.raises(SandboxFileNotFoundError, match=r"nope/missing\.txt") as info:
        await executor.read_file(user_id, "nope/missing.txt")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        await executor.download_file(user_id, "/workspace/absent.bin")


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "/etc/passwd",
        "/workspace/../etc/x",
        "/tmp/x",
        "/proc/self/environ",
        "/workspace/a/../../root/x",
    ],
)
async def test_writes_outside_workspace_are_refused(executor, user_id, path):
    with pytest.raises(PathNotAllowedError, match="outside"):
        await executor.write_file(user_id, path, "x")


@pytest.mark.parametrize("path", ["/tools/evil.py", "/skills/x/SKILL.md"])
async def test_tools_and_skills_are_read_only(executor, user_id, path):
    with pytest.raises(PathNotAllowedError, match="read-only"):
        await executor.write_file(user_id, path, "x")
    code, _, _err = await executor.execute_bash(user_id, f"touch {path}")
    assert code != 0


async def test_tools_can_be_read(executor, user_id):
    text = await executor.read_file(user_id, "/tools/example.py")
    assert "def greet" in text
    names = [entry.name for entry in await executor.list_files(user_id, "/tools")]
    assert "example.py" in names


async def test_symlinks_leading_out_are_refused(executor, user_id):
    await executor.execute_bash(
        user_id, "ln -s /etc etc_link; ln -s /etc/passwd pw; ln -s /tools tl"
    )
    with pytest.raises(PathNotAllowedError, match="symlink"):
        await executor.write_file(user_id, "etc_link/evil", "x")
    with pytest.raises(PathNotAllowedError):
        await executor.download_file(user_id, "pw")
    with pytest.raises(PathNotAllowedError):
        await executor.read_file(user_id, "pw")
    with pytest.raises(PathNotAllowedError):
        await executor.write_file(user_id, "tl/evil.py", "x")


async def test_reading_a_directory_or_fifo_is_a_clear_error(executor, user_id):
    await executor.execute_bash(user_id, "mkdir -p d; mkfifo f")
    with pytest.raises(NotARegularFileError, match="directory"):
        await executor.read_file(user_id, "d")
    with pytest.raises(NotARegularFileError, match="not a regular file"):
        await executor.read_file(user_id, "f")  # must not block on the FIFO


async def test_list_files_reports_name_size_and_time(executor, user_id):
    await executor.write_file(user_id, "a/b.txt", "12345")
    entries = await executor.list_files(user_id, recursive=True)
    by_path = {e.path: e for e in entries}
    assert by_path["/workspace/a"].is_dir
    assert by_path["/workspace/a/b.txt"].size == 5
    assert abs(by_path["/workspace/a/b.txt"].modified - time.time()) < 120


async def test_per_file_limit_refuses_uploads_and_stops_commands(make_executor, user_id):
    client = make_executor(max_file_bytes=1 << 20)
    with pytest.raises(FileTooLargeError, match="per-file limit"):
        await client.upload_file(user_id, "big.bin", b"x" * ((1 << 20) + 1))
    code, _, _ = await client.execute_bash(user_id, "head -c 2000000 /dev/zero > big.bin")
    assert code != 0
    code, out, _ = await client.execute_bash(user_id, "stat -c %s big.bin")
    assert int(out) <= 1 << 20


async def test_quota_refuses_writes_and_keeps_existing_files(make_executor, user_id):
    client = make_executor(workspace_quota_bytes=1_000_000)
    await client.upload_file(user_id, "one.bin", b"1" * 600_000)
    with pytest.raises(QuotaExceededError, match="quota"):
        await client.upload_file(user_id, "two.bin", b"2" * 600_000)
    assert await client.download_file(user_id, "one.bin") == b"1" * 600_000
    with pytest.raises(FileNotFoundError):
        await client.download_file(user_id, "two.bin")
    await client.upload_file(
        user_id, "one.bin", b"3" * 900_000
    )  # replacing counts the old size out
    _code, out, _ = await client.execute_bash(user_id, "ls -A")
    assert out.split() == ["one.bin"]  # nothing partial left behind


async def test_workspace_downloads_as_a_zip_without_symlinked_files(executor, user_id):
    import io
    import zipfile

    await executor.write_file(user_id, "a.txt", "A")
    await executor.upload_file(user_id, "sub/b.bin", bytes(range(256)))
    await executor.execute_bash(user_id, "ln -s /etc/passwd leak; mkfifo pipe")
    archive = zipfile.ZipFile(io.BytesIO(await executor.download_workspace_zip(user_id)))
    assert sorted(archive.namelist()) == ["a.txt", "sub/b.bin"]
    assert archive.read("sub/b.bin") == bytes(range(256))


class PeakRss:
    """Samples this process's resident memory while a block runs; `growth` is peak - start."""

    def __init__(self) -> None:
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _rss() -> int:
        for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


async def test_a_500_mb_workspace_zips_to_disk_in_flat_host_memory(executor, user_id, tmp_path):
    made = await executor.run(
        user_id,
        "for i in 1 2 3 4 5; do head -c 100M /dev/zero > part$i.bin; done; "
        "head -c 20M /dev/urandom > noise.bin; du -sm /workspace | cut -f1",
        timeout=120,
    )
    assert int(made.stdout) >= 520
    dest = tmp_path / "workspace.zip"
    with PeakRss() as rss:
        size = await executor.zip_workspace_to(user_id, dest)
    assert size == dest.stat().st_size > 20 << 20
    with zipfile.ZipFile(dest) as archive:
        assert sum(i.file_size for i in archive.infolist()) == 520 << 20
        assert archive.testzip() is None
    assert rss.growth < 64 << 20, f"host memory grew by {rss.growth >> 20} MiB"


async def test_a_big_file_downloads_to_disk_in_flat_host_memory(executor, user_id, tmp_path):
    await executor.run(user_id, "head -c 200M /dev/urandom > big.bin", timeout=120)
    digest = (await executor.run(user_id, "sha256sum big.bin | cut -d' ' -f1")).stdout.strip()
    dest = tmp_path / "big.bin"
    with PeakRss() as rss:
        assert await executor.download_to(user_id, "big.bin", dest) == 200 << 20
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest
    assert rss.growth < 64 << 20, f"host memory grew by {rss.growth >> 20} MiB"
