"""File operations that run INSIDE the sandbox, as the sandbox user.

The host never opens sandbox-made paths and never uses Docker's archive API (it reads root-only
files and followed a crafted symlink into the read-only root). Instead the host runs this file
with `python3 -I -S -c <this source> <op> <json args>` as uid 1000: arguments in argv as JSON,
file content on stdin, results on stdout, and one JSON line on stderr (metadata, or an error
with a `kind` the host maps onto its error classes). Standard library only; Python >= 3.9.
"""

import contextlib
import json
import os
import stat
import sys

WORKSPACE = "/workspace"
READ_ROOTS = ("/workspace", "/tools", "/skills")
CHUNK = 1 << 16


class Refused(Exception):
    def __init__(self, kind, message, path=""):
        super().__init__(message)
        self.kind, self.message, self.path = kind, message, path


def _under(path, root):
    return path == root or path.startswith(root + "/")


def resolve(path, writing):
    """Absolute real path for `path`, refused unless it stays under the allowed roots."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise Refused(
            "invalid",
            "the path must be a non-empty string without NUL bytes",
            str(path),
        )
    lexical = os.path.normpath(path if path.startswith("/") else WORKSPACE + "/" + path)
    lexical = "/" + lexical.lstrip("/")  # normpath keeps a leading '//'
    roots = (WORKSPACE,) if writing else READ_ROOTS
    if not any(_under(lexical, root) for root in roots):
        if writing and any(_under(lexical, root) for root in READ_ROOTS):
            raise Refused(
                "not_allowed",
                f"{lexical} is read-only: only /workspace can be written",
                path,
            )
        raise Refused("not_allowed", f"{path} is outside {' and '.join(roots)}", path)
    real = os.path.realpath(lexical)
    if not any(_under(real, root) for root in roots):
        raise Refused(
            "not_allowed",
            f"{path} leads outside {' and '.join(roots)} (through a symlink)",
            path,
        )
    return real


def open_regular(real, shown):
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Refused("not_found", f"no such file: {shown}", shown) from None
    except IsADirectoryError:
        raise Refused("not_file", f"{shown} is a directory, not a file", shown) from None
    except PermissionError:
        raise Refused("not_allowed", f"permission denied: {shown}", shown) from None
    except OSError as exc:  # ELOOP: the last component is a symlink that changed under us
        raise Refused("not_allowed", f"cannot open {shown}: {exc.strerror}", shown) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise Refused("not_file", f"{shown} is {kind}", shown)
    return fd, info


def op_read(args, out, stdin):
    """Lines [offset, offset + line_count) of a text file, at most `limit` bytes."""
    real = resolve(args["path"], writing=False)
    fd, _ = open_regular(real, args["path"])
    offset, count, limit = args["offset"], args["line_count"], args["limit"]
    with os.fdopen(fd, "rb") as f:
        line_no = 0
        while line_no < offset:  # skip without holding lines in memory
            piece = f.readline(CHUNK)
            if not piece:
                break
            if piece.endswith(b"\n"):
                line_no += 1
        written, lines, truncated = 0, 0, False
        while count is None or lines < count:
            line = f.readline(limit - written + 1)
            if not line:
                break
            if written + len(line) > limit:
                out.write(line[: limit - written])
                written = limit
                truncated = True
                break
            out.write(line)
            written += len(line)
            lines += 1 if line.endswith(b"\n") else 0
        more = truncated or bool(f.read(1))
    return {"next_offset": offset + lines, "truncated": truncated, "more": more}


def _usage(root):
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


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
    used = _usage(WORKSPACE)
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
    tmp = os.path.join(parent, f".{os.path.basename(real)}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    received = 0
    try:
        with os.fdopen(fd, "wb") as f:
            # Exactly `size` bytes: the host need not close its end (TLS cannot half-close).
            while received < size:
                want = min(CHUNK, size - received)
                chunk = stdin.read1(want) if hasattr(stdin, "read1") else stdin.read(want)
                if not chunk:
                    break
                received += len(chunk)
                f.write(chunk)
        if received != size:
            raise Refused("incomplete", f"received {received} of {size} bytes", args["path"])
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return {"path": real, "size": received}


def op_download(args, out, stdin):
    real = resolve(args["path"], writing=True)  # downloads are confined to /workspace
    fd, info = open_regular(real, args["path"])
    if info.st_size > args["limit"]:
        os.close(fd)
        raise Refused(
            "too_large",
            (
                f"{args['path']} is {info.st_size:,} bytes, over the download limit of "
                f"{args['limit']:,} bytes"
            ),
            args["path"],
        )
    with os.fdopen(fd, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
    return {"path": real, "size": info.st_size}


def op_list(args, out, stdin):
    real = resolve(args["path"], writing=False)
    try:
        top = os.lstat(real)
    except FileNotFoundError:
        raise Refused("not_found", f"no such directory: {args['path']}", args["path"]) from None
    if not stat.S_ISDIR(top.st_mode):
        raise Refused("not_file", f"{args['path']} is not a directory", args["path"])
    entries, truncated = [], False
    for dirpath, dirnames, filenames in os.walk(real):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            try:
                info = os.lstat(full)
            except OSError:
                continue
            entries.append(
                {
                    "path": full,
                    "name": name,
                    "size": info.st_size,
                    "modified": info.st_mtime,
                    "is_dir": stat.S_ISDIR(info.st_mode),
                    "is_symlink": stat.S_ISLNK(info.st_mode),
                }
            )
            if len(entries) >= args["max_entries"]:
                truncated = True
                break
        if truncated or not args["recursive"]:
            break
    out.write(json.dumps(entries).encode())
    return {"truncated": truncated}


def op_zip(args, out, stdin):
    """A zip of /workspace (regular files only; symlinks are skipped) streamed to stdout."""
    import zipfile

    total = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for dirpath, dirnames, filenames in os.walk(WORKSPACE):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    fd, info = open_regular(full, full)
                except Refused:
                    continue  # symlinks, FIFOs, files that vanished
                total += info.st_size
                if total > args["limit"]:
                    os.close(fd)
                    raise Refused(
                        "too_large",
                        (
                            f"the workspace holds more than {args['limit']:,} bytes; download "
                            "files one by one"
                        ),
                        WORKSPACE,
                    )
                with (
                    os.fdopen(fd, "rb") as src,
                    archive.open(os.path.relpath(full, WORKSPACE), "w", force_zip64=True) as dst,
                ):
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        dst.write(chunk)
    return {"size": total}


def op_usage(args, out, stdin):
    return {"used": _usage(WORKSPACE)}


OPS = {
    "read": op_read,
    "write": op_write,
    "download": op_download,
    "list": op_list,
    "usage": op_usage,
    "zip": op_zip,
}


def run(op, args, stdin, out, err):
    """Run one operation: result bytes to `out`, one JSON line to `err`; return the exit code."""
    try:
        meta = OPS[op](args, out, stdin)
    except Refused as exc:
        out.flush()
        err.write(json.dumps({"kind": exc.kind, "message": exc.message, "path": exc.path}))
        return 3
    except OSError as exc:
        out.flush()
        kinds = {27: "too_large", 28: "no_space", 122: "no_space"}  # EFBIG, ENOSPC, EDQUOT
        kind = kinds.get(exc.errno, "os_error")
        err.write(json.dumps({"kind": kind, "message": f"{exc.strerror or exc}", "path": ""}))
        return 4
    out.flush()
    err.write(json.dumps(meta))
    return 0


def main():
    return run(
        sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer, sys.stdout.buffer, sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
