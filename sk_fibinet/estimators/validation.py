"""Checks of the estimators' parameters and input that the declarative
``_parameter_constraints`` cannot express: the device exists here, the hidden
layer sizes are ints, and ``X`` has the shape and the columns seen in ``fit``.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import validate_data

from ..preprocessing.polars_input import is_polars_frame, polars_to_pandas


def _check_device(device):
    """Return a usable ``torch.device`` or raise a ValueError that says why."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0', "
            f"got {device!r} ({exc})."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist."
            )
    elif dev.type == "mps":
        raise ValueError(
            f"device={device!r} is not supported: the embedding tables are trained "
            "with sparse gradients, which PyTorch does not support on MPS (Apple "
            "silicon); use device='cpu'."
        )
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}.")
    return dev


class ValidationMixin:
    """Input and parameter checks of :class:`~.base.BaseFiBiNET`, run in ``fit``
    and before every prediction."""

    def _validate_X(self, X, *, reset: bool):
        """Check X, set or compare feature names, return a DataFrame or ndarray."""
        if is_polars_frame(X):
            X = polars_to_pandas(X)
        if isinstance(X, pd.DataFrame):
            duplicated = X.columns[X.columns.duplicated()].unique().tolist()
            if duplicated:
                raise ValueError(f"X has duplicate column names: {duplicated}.")
            if not reset and hasattr(self, "feature_names_in_"):
                X = self._align_columns(X)
            if reset and X.shape[0] == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={X.shape}) while a minimum "
                    "of 1 is required."
                )
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[1] == 0:
                raise ValueError(
                    f"Found array with 0 feature(s) (shape={X.shape}) while a "
                    "minimum of 1 is required."
                )
            return X
        if reset:
            numeric_only = self.categorical_features is None or isinstance(
                self.categorical_features, str
            )
        else:
            numeric_only = not self.encoder_.categorical_mask_.any()
        return validate_data(
            self,
            X,
            reset=reset,
            dtype=np.float64 if numeric_only else None,
            ensure_all_finite=False,
            ensure_min_samples=1 if reset else 0,
        )

    def _align_columns(self, X: pd.DataFrame) -> pd.DataFrame:
        """Match DataFrame columns by name to those seen in fit."""
        expected = list(self.feature_names_in_)
        got = [str(c) for c in X.columns]
        missing = [c for c in expected if c not in set(got)]
        extra = [c for c in got if c not in set(expected)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra}")
            raise ValueError(
                "X does not have the columns seen in fit: " + " and ".join(parts) + "."
            )
        if got != expected:
            X = X[expected]
        return X

    def _hidden_sizes(self) -> tuple:
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
        if not all(isinstance(h, Integral) and not isinstance(h, bool) for h in hidden):
            raise TypeError(
                "hidden_layer_sizes must be an int or a tuple of ints, got "
                f"{self.hidden_layer_sizes!r}."
            )
        if any(h < 1 for h in hidden):  # ints, checked above
            raise ValueError(
                "hidden_layer_sizes must hold positive ints, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return hidden

    def _device(self) -> torch.device:
        return _check_device(self.device)
