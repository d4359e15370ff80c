"""Kernel-enforced workspace quotas for the Docker engine: one sparse ext4 image per workspace,
attached as a loop device, which Docker's `local` volume driver mounts as the session's volume.

A command writing past the size gets ENOSPC inside the sandbox; the host disk holds only what
was really written (the image is sparse). Docker's `local` driver cannot mount an image file
itself (`o=loop` fails), so the image is attached here and the volume names the device.

Loop devices do not survive a host reboot, and after one a device number may name another
file: before a workspace is mounted its device is checked against its own image and attached
again (to the same number when free, else the volume is recreated on a new one), so a container
can never mount someone else's workspace. Needs root and a daemon on this machine; elsewhere
the executor falls back to plain volumes with the per-file limit (`QuotaMode.PER_FILE`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import uuid
from enum import Enum
from pathlib import Path

from ..errors import EngineError

logger = logging.getLogger(__name__)

IMAGE_LABEL = "mcp-code-executor.quota-image"


class QuotaMode(Enum):
    LOOP = "loop"  # kernel-enforced: a loop-mounted ext4 image per workspace
    PER_FILE = "per-file"  # plain volumes: each file bounded (fsize), totals checked on writes


def loop_unavailable_reason() -> str | None:
    """Why loop-device workspaces cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("losetup", "mkfs.ext4", "dumpe2fs", "debugfs"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control (loop devices are not available)"
    return None


def _run(*argv: str, nice: bool = False) -> str:
    tool = shutil.which(argv[0]) or f"/usr/sbin/{argv[0]}"
    command = [tool, *argv[1:]]
    if nice:  # background work: let the sessions' own commands go first
        command = ["nice", "-n", "10", *command]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"{argv[0]} failed: {exc}") from exc
    if done.returncode != 0:
        raise EngineError(f"{argv[0]} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


# Quota -> image file size that gives it (mkfs is deterministic): measured once per process.
_FILE_SIZES: dict[int, int] = {}


class LoopImages:
    """The images of one app's workspaces, under `folder`, with a few formatted ahead.

    Making an image (mkfs and friends) costs tens of milliseconds of CPU; a crowd of new
    sessions should not pay it at once. So a small stock of blank images of the quota's size is
    kept in `folder/spare/`, refilled in the background at low priority: a workspace then takes
    one by renaming it."""

    def __init__(self, folder: Path, spares: int = 4) -> None:
        self.folder = folder
        self.spares = spares
        self._lock = threading.Lock()
        self._refilling = False

    def image(self, volume: str) -> Path:
        return self.folder / f"{volume}.img"

    def _spare_dir(self, size_bytes: int) -> Path:
        return self.folder / "spare" / str(size_bytes)

    def make(self, volume: str, size_bytes: int) -> tuple[Path, str]:
        """A blank ext4 image owned by the sandbox user, with room for `size_bytes`, attached
        (a spare one when there is one); (image, device)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        image = self.image(volume)
        try:
            if not self._take_spare(size_bytes, image):
                self._format(image, size_bytes)
            return image, self.attach(image)
        except EngineError:
            image.unlink(missing_ok=True)
            raise
        finally:
            self.refill_later(size_bytes)

    def _take_spare(self, size_bytes: int, image: Path) -> bool:
        with self._lock:
            stock = sorted(self._spare_dir(size_bytes).glob("*.img"))
            for spare in stock:
                try:
                    os.rename(spare, image)
                    return True
                except OSError:
                    continue
        return False

    def refill_later(self, size_bytes: int) -> None:
        """Top the stock up in a background thread (one at a time)."""
        if self.spares <= 0:
            return
        with self._lock:
            if self._refilling:
                return
            self._refilling = True

        def refill() -> None:
            try:
                folder = self._spare_dir(size_bytes)
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                while len(list(folder.glob("*.img"))) < self.spares:
                    part = folder / f".{uuid.uuid4().hex}.part"
                    self._format(part, size_bytes, nice=True)
                    os.rename(part, folder / f"{uuid.uuid4().hex}.img")
            except (EngineError, OSError) as exc:
                logger.warning("could not make spare workspace images: %s", exc)
            finally:
                with self._lock:
                    self._refilling = False

        threading.Thread(target=refill, name="spare-workspaces", daemon=True).start()

    @staticmethod
    def _format(image: Path, size_bytes: int, *, nice: bool = False) -> None:
        """Make `image` a sparse ext4 file system with room for `size_bytes` (its metadata
        comes on top), owned by the sandbox user, without lost+found."""
        size = _FILE_SIZES.get(size_bytes, size_bytes)
        for _ in range(4):  # grow until the usable space covers the quota
            with image.open("wb") as f:
                f.truncate(size)
            # The file is sparse, so an unwritten journal reads as zeros already: writing them
            # (32 MB for 1 GiB) would only cost time and host disk.
            options = "root_owner=1000:1000,lazy_journal_init=1"
            mkfs = ("mkfs.ext4", "-q", "-F", "-m", "0", "-E", options, str(image))
            _run(*mkfs, nice=nice)
            _run("debugfs", "-w", "-R", "rmdir lost+found", str(image), nice=nice)
            if _FILE_SIZES.get(size_bytes) == size:
                return  # this size was measured before: the same mkfs gives the same room
            short = size_bytes - usable_bytes(image)
            if short <= 0:
                _FILE_SIZES[size_bytes] = size
                return
            size += short + (1 << 20)

    @staticmethod
    def attach(image: Path, device: str | None = None) -> str:
        """Attach `image` (to `device` when given and free); its device."""
        if device is not None and not backing_file(device):
            try:
                _run("losetup", device, str(image))
                return device
            except EngineError:
                pass  # taken meanwhile: any free one will do
        return _run("losetup", "--find", "--show", str(image))

    @staticmethod
    def devices_of(image: Path) -> list[str]:
        out = _run("losetup", "-j", str(image))
        return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]

    def discard(self, image: Path) -> None:
        """Detach every device of `image` and delete it."""
        for device in self.devices_of(image) if image.exists() else []:
            try:
                _run("losetup", "-d", device)
            except EngineError as exc:
                logger.warning("could not detach %s: %s", device, exc)
        image.unlink(missing_ok=True)


def usable_bytes(image: Path) -> int:
    """Space a fresh ext4 image offers files: its free blocks, less what ext4 keeps back for
    delayed allocation (2 %, at most 4096 blocks)."""
    fields = {}
    for line in _run("dumpe2fs", "-h", str(image)).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    try:
        free = int(fields["Free blocks"]) * int(fields["Block size"])
    except (KeyError, ValueError) as exc:
        raise EngineError(f"cannot read the size of {image}") from exc
    return free - min(free // 50, 4096 * int(fields["Block size"]))


def backing_file(device: str) -> str:
    """The file a loop device is attached to ('' when none)."""
    name = Path(device).name
    try:
        return Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
    except OSError:
        return ""


def attached_to(device: str, image: Path) -> bool:
    current = backing_file(device)
    return bool(current) and os.path.realpath(current) == os.path.realpath(image)
