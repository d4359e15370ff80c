"""File operations that run INSIDE the sandbox, as the sandbox user (the module `sandbox_files`).

The host never opens sandbox-made paths and never uses Docker's archive API (it reads root-only
files and followed a crafted symlink into the read-only root). Instead the host runs these
operations through the runner, or as a one-off `python3 -I -S -c <script> <op> <json args>` as
uid 1000 when there is none (`executor.sandbox_side.script`): arguments as JSON, file content on
stdin, results on stdout, and one JSON line on stderr (metadata, or an error with a `kind` the
host maps onto its error classes). Standard library only.
"""

import json
import os
import stat
import sys

import sandbox_tree as tree
from sandbox_paths import CHUNK, WORKSPACE, Refused, open_regular, resolve, usage
from sandbox_writes import op_write


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
    return {"used": usage(WORKSPACE)}


OPS = {
    "read": op_read,
    "write": op_write,
    "download": op_download,
    "list": op_list,
    "usage": op_usage,
    "zip": op_zip,
    "install_tree": tree.op_install_tree,
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
