"""The precision of the fused first layer: float32, or bfloat16 where the CPU has it.

The first DNN layer reads every pair product of both branches: 19 of the 20.4
MFLOP per row of the reference forward pass (39 fields, ``d = 16``, 400 units).
On a CPU with native bfloat16 instructions (AVX-512 BF16 on AMD Zen 4 and Intel
Cooper Lake and later, AMX on Intel Sapphire Rapids and later) oneDNN runs its
matmuls about twice as fast in bfloat16 as in float32; without them bfloat16 is
emulated and slower. :func:`first_layer_dtype` turns the estimators'
``precision`` parameter into the network's ``first_layer_dtype``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

#: CPU flags (``/proc/cpuinfo``) of native bfloat16 matmuls.
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=4)
def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has native bfloat16 matmul instructions.

    Parameters
    ----------
    cpuinfo : Path, default=Path("/proc/cpuinfo")
        Linux's CPU description; where it cannot be read (other systems), the
        answer is False.

    Returns
    -------
    bool
        True when the first processor's flags hold one of
        :data:`BFLOAT16_FLAGS`.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(BFLOAT16_FLAGS & set(line.partition(":")[2].split()))
    return False


def first_layer_dtype(precision: str, device) -> torch.dtype | None:
    """The network's ``first_layer_dtype`` for an estimator's ``precision``.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
        ``"auto"``: bfloat16 on a CPU device with native bfloat16
        (:func:`native_bfloat16`), float32 otherwise (GPUs included).
    device : torch.device or str
        The device the network runs on.

    Returns
    -------
    dtype : torch.dtype or None
        ``torch.bfloat16``, or None for float32 (the parameters' own).

    Examples
    --------
    >>> first_layer_dtype("float32", "cpu") is None
    True
    >>> first_layer_dtype("bfloat16", "cpu")
    torch.bfloat16
    """
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "float32":
        return None
    if precision != "auto":
        raise ValueError(
            f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}."
        )
    if torch.device(device).type == "cpu" and native_bfloat16():
        return torch.bfloat16
    return None
