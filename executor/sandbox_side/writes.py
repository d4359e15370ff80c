"""Writing a file into /workspace: atomic (temp file, then rename) when there is room for both
copies, staged in /tmp and overwritten in place when there is not, so replacing a big file in an
almost full workspace works and a failed upload changes nothing.

Runs INSIDE the sandbox, as the module `sandbox_writes`. Standard library only.
"""

import contextlib
import os
import shutil
import stat

from sandbox_paths import CHUNK, WORKSPACE, Refused, resolve, usage

STAGING = "/tmp"  # where a replacement waits when /workspace cannot hold two copies
SLACK = 64 << 10  # room the file system needs beyond the data itself (extents, a directory block)


def op_write(args, out, stdin):
    """Write stdin to the path atomically: temp file in the same directory, then rename."""
    real = resolve(args["path"], writing=True)
    if real == WORKSPACE:
        raise Refused(
            "not_file",
            f"{args['path']} is the workspace directory itself",
            args["path"],
        )
    size = args["size"]
    old = 0
    try:
        info = os.lstat(real)
        if stat.S_ISDIR(info.st_mode):
            raise Refused("not_file", f"{args['path']} is a directory", args["path"])
        old = info.st_size
    except FileNotFoundError:
        pass
    used = usage(WORKSPACE)
    if used - old + size > args["quota"]:
        raise Refused(
            "quota",
            (
                f"writing {size:,} bytes to {args['path']} would take /workspace to "
                f"{used - old + size:,} bytes, over its quota of {args['quota']:,} bytes; "
                "delete files you no longer need"
            ),
            args["path"],
        )
    parent = os.path.dirname(real)
    try:
        os.makedirs(parent, exist_ok=True)
    except FileExistsError:
        raise Refused("not_file", f"a parent of {args['path']} is a file", args["path"]) from None
    if os.path.realpath(parent) != parent:  # a parent was swapped for a symlink meanwhile
        raise Refused("not_allowed", f"{args['path']} leads outside /workspace", args["path"])
    if old and _free(parent) < size + SLACK:
        return _replace_in_place(args["path"], real, size, old, stdin)
    tmp = os.path.join(parent, f".{os.path.basename(real)}.{os.getpid()}.part")
    _receive(tmp, size, stdin, args["path"])
    os.replace(tmp, real)
    return {"path": real, "size": size}


def _free(path):
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def _receive(tmp, size, stdin, shown):
    """Exactly `size` bytes of stdin into a new file `tmp` (removed again on any failure); the
    host need not close its end (TLS cannot half-close)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    received = 0
    try:
        with os.fdopen(fd, "wb") as f:
            while received < size:
                want = min(CHUNK, size - received)
                chunk = stdin.read1(want) if hasattr(stdin, "read1") else stdin.read(want)
                if not chunk:
                    break
                received += len(chunk)
                f.write(chunk)
        if received != size:
            raise Refused("incomplete", f"received {received} of {size} bytes", shown)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _replace_in_place(shown, real, size, old, stdin):
    """Replace a file when /workspace cannot hold the old and the new copy at once (the usual
    temp-then-rename needs both): receive the new content in /tmp first, so a failed upload
    changes nothing, then overwrite the file where it is."""
    if old + _free(os.path.dirname(real)) < size + SLACK or _free(STAGING) < size + SLACK:
        raise Refused(
            "no_space",
            (
                f"replacing {shown} ({old:,} bytes) with {size:,} bytes needs about {size:,} "
                "bytes free in /workspace (or in /tmp to stage it); delete files you no longer "
                "need. Nothing was changed"
            ),
            shown,
        )
    staged = os.path.join(STAGING, f".sandbox-upload-{os.getpid()}.part")
    _receive(staged, size, stdin, shown)
    try:
        target = os.open(real, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
        with open(staged, "rb") as src, os.fdopen(target, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(staged)
    return {"path": real, "size": size}
