"""The app process's own limits, raised where the operating system allows."""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit, and return it.

    Each live session holds a connection to its command runner, and every command in flight one
    more; the soft limit many systems start processes with (1024) would stop an app at a few
    hundred sessions with "Too many open files", although the hard limit allows far more.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:  # e.g. above the kernel's nr_open
            logger.info("open-files limit stays at %d: %s", soft, exc)
            return soft
        return hard
    return soft
