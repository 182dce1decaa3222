"""Opt-in: keep glibc from returning large tensor buffers to the OS every step.

A FiBiNET step allocates intermediates of tens of MB. glibc serves
allocations above its mmap threshold (at most 32 MB by default) with fresh
``mmap`` pages and unmaps them on free, so every step can page-fault them in
again. Raising the mmap and trim thresholds keeps those buffers in the heap
and reuses them. The price: memory freed later stays with the process (peak
RSS does not shrink), for the whole process, not only for sk_fibinet. So the
estimators never do it on their own; call :func:`sk_fibinet.tune_malloc`
once if you want it (measured gain in ``docs/performance.md``).
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB

_state: dict[str, bool] = {}


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process.

    Opt-in, once per process: it changes how the whole process's memory
    allocator behaves (large freed buffers stay in the heap for reuse, so the
    resident memory does not shrink after a fit). On the reference workload
    (39 fields, d = 16) it sped up training and prediction of FiBiNET on CPU
    (see the performance chapter). A no-op returning False where glibc is not
    the C library.

    Returns
    -------
    applied : bool
        Whether the thresholds are raised.

    Examples
    --------
    >>> import sk_fibinet
    >>> sk_fibinet.tune_malloc()  # doctest: +SKIP
    True
    """
    if "applied" in _state:
        return _state["applied"]
    applied = False
    if sys.platform.startswith("linux"):
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
