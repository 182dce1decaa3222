"""Serialization helpers below both checkpointing and persistence (a leaf).

Plain Python values for ``torch.load(weights_only=True)`` files, the training
history as JSON, and the torch release floor for loading such files. Neither
``_checkpoint`` nor ``_persistence`` imports the other for these.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

# The weights-only unpickler of older torch releases can be escaped by a crafted
# file: torch < 2.6.0 by CVE-2025-32434 (GHSA-53q9-r3pm-6pq6), torch < 2.10.0 by
# CVE-2026-24747 (heap corruption). load_model refuses to run below this.
_SAFE_TORCH = (2, 10)

_TORCH_ADVISORIES = "CVE-2025-32434 (GHSA-53q9-r3pm-6pq6) and CVE-2026-24747"

_SCALARS = (str, bool, int, float)


# --------------------------------------------------------------------- helpers
def _plain_scalar(value):
    """Numpy scalars to their Python equivalents; other values unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain(value, what: str):
    """``value`` as nested plain Python values, or a ValueError naming ``what``."""
    value = _plain_scalar(value)
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, (np.ndarray, pd.Index, pd.Series)):
        return [_plain(v, what) for v in np.asarray(value, dtype=object).tolist()]
    if isinstance(value, list):
        return [_plain(v, what) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v, what) for v in value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            key = _plain_scalar(key)
            if not (key is None or isinstance(key, _SCALARS)):
                raise ValueError(
                    f"Cannot save {what}: dict key {key!r} of type "
                    f"{type(key).__name__} is not a str, int, float or bool."
                )
            out[key] = _plain(item, what)
        return out
    raise ValueError(
        f"Cannot save {what}: value {value!r} of type {type(value).__name__} is "
        "not a str, int, float, bool, None, list, tuple or dict."
    )


def _json_safe(value):
    """``value`` with every non-JSON item dropped (numpy, torch scalars converted)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    value = _plain_scalar(value)
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        items = [_json_safe(v) for v in value]
        return [v for v in items if v is not _DROP]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                continue
            item = _json_safe(item)
            if item is not _DROP:
                out[key] = item
        return out
    return _DROP


_DROP = object()


def _history_to_json(history) -> str:
    epochs = [_json_safe(dict(epoch)) for epoch in history]
    return json.dumps(epochs)


def _torch_version(version: str) -> tuple[int, int]:
    """``"2.10.0+cpu"`` -> ``(2, 10)``."""
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _check_torch_safe() -> None:
    """Refuse to unpickle anything on a torch whose weights-only loader leaks."""
    if _torch_version(torch.__version__) < _SAFE_TORCH:
        floor = ".".join(map(str, _SAFE_TORCH))
        raise RuntimeError(
            f"load_model needs torch >= {floor}, found {torch.__version__}: older "
            "releases let a crafted file escape torch.load(weights_only=True) "
            f"({_TORCH_ADVISORIES}). Upgrade torch to load model files."
        )
