"""The app raises its open-files limit: each live session holds a runner's connection."""

from __future__ import annotations

import resource
import subprocess
import sys


def test_the_soft_open_files_limit_is_raised_to_the_hard_one():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = (
        "import resource; from executor.host_limits import raise_open_files_limit; "
        "print(raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    started_low = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
        capture_output=True,
        text=True,
        check=True,
    )
    returned, soft_now, hard_now = (int(v) for v in started_low.stdout.split())
    assert hard_now == hard
    assert soft_now == returned > 256
