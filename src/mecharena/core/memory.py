"""Memory checks before a run allocates: a run that would not fit stops with a clear error, not a swap storm.

:func:`available` reads the memory the kernel says a new process could use without swapping
(``MemAvailable`` of ``/proc/meminfo``; elsewhere, free pages); :func:`require` compares an
estimate with it. The estimates live with the code that allocates (``sim.simulate.trace``).
"""

import os
from pathlib import Path

from mecharena.core.errors import ConfigError

GIB = 1024**3


def available() -> int | None:
    """Bytes of memory available now, or None where the platform does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require(needed: int, what: str, fix: str, *, have: int | None = None) -> None:
    """Raise :class:`ConfigError` if ``needed`` bytes exceed what is available (``have``: override, for tests).

    Args:
        needed: the estimate, in bytes.
        what: what needs it, e.g. "a per-round trace of markets=1000000 x rounds=200".
        fix: how to need less, e.g. "lower markets or rounds".
    """
    have = available() if have is None else have
    if have is not None and needed > have:
        raise ConfigError(f"{what} needs about {needed / GIB:.1f} GiB but {have / GIB:.1f} GiB are available; {fix}")
