"""Where sandbox file operations may go: path confinement under the allowed roots, opening
only regular files, and the workspace's size. Shared by the files helper and its writes.

Runs INSIDE the sandbox, as the module `sandbox_paths`. Standard library only.
"""

import contextlib
import os
import stat

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


def usage(root):
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
