"""Installing code mode's generated modules into /tools/mcp (a tmpfs the host fills).

Runs INSIDE the sandbox, as the module `sandbox_tree`: one of the files helper's operations
(files.py), through the runner or a one-off exec. Standard library only.
"""

import contextlib
import json
import os
import re

from sandbox_paths import Refused

TREE_ROOT = "/tools/mcp"
TREE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,80}\.(py|md)$")
CHUNK = 1 << 16


def op_install_tree(args, out, stdin):
    """Make /tools/mcp hold exactly the files of the JSON object on stdin ({name: text}): code
    mode's modules for this sandbox's user, sent by the host whenever they change."""
    if not os.path.isdir(TREE_ROOT):
        raise Refused("not_found", f"{TREE_ROOT} is not mounted in this sandbox", TREE_ROOT)
    data = b""
    while len(data) < args["size"]:
        chunk = stdin.read(min(CHUNK, args["size"] - len(data)))
        if not chunk:
            raise Refused("incomplete", "the tree arrived incomplete", TREE_ROOT)
        data += chunk
    wanted = json.loads(data)
    for name in wanted:
        if not TREE_NAME.match(name):
            raise Refused("invalid", f"not a module file name: {name!r}", TREE_ROOT)
    for name in os.listdir(TREE_ROOT):
        full = os.path.join(TREE_ROOT, name)
        if name not in wanted and (TREE_NAME.match(name) or name.endswith(".part")):
            with contextlib.suppress(OSError):
                os.unlink(full)
    for name, text in wanted.items():
        tmp = os.path.join(TREE_ROOT, f".{name}.part")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(TREE_ROOT, name))
    return {"files": len(wanted)}
