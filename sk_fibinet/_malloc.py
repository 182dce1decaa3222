"""Keep glibc from returning large tensor buffers to the OS after every step.

A FiBiNET step allocates several ``(batch, pairs, dim)`` intermediates (about
48 MB each at batch 1024 with 39 fields and d=16). glibc serves allocations
above its mmap threshold (at most 32 MB by default) with fresh ``mmap`` pages
and unmaps them on free, so every step page-faults hundreds of MB in again;
that alone halved training and prediction throughput on the machines we
measured (see ``docs/performance.md``). Raising the mmap and trim thresholds
keeps those buffers in the heap and reuses them. The price: memory freed after
a fit stays with the process (peak RSS does not shrink).

Set the environment variable ``SK_FIBINET_MALLOC_TUNING=0`` to opt out. On
systems without glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB

_state: dict[str, bool] = {}


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process.

    Returns
    -------
    applied : bool
        Whether the thresholds are raised (False when opted out or not glibc).
    """
    if "applied" in _state:
        return _state["applied"]
    applied = False
    if os.environ.get(
        "SK_FIBINET_MALLOC_TUNING", "1"
    ) != "0" and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            applied = bool(
                mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)
            )
    _state["applied"] = applied
    return applied
