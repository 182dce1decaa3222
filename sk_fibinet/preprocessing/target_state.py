"""The state of target statistics as numpy arrays and plain values.

What ``save_model`` stores of a :class:`.TargetStatistics` (without pickle) and
what ``load_model`` gives back: :meth:`~.TargetStatistics.to_state` and
:meth:`~.TargetStatistics.from_state`, the second checking every array of a file
that may not be trusted against the vocabularies, folds and targets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class _StateMixin:
    """:meth:`to_state` and :meth:`from_state` of :class:`.TargetStatistics`.

    Written against that class's attributes (the parameters, ``_vocab``,
    ``_pair_vocab``, ``_sources``, ``_stats``, the fold totals ``_fold_*``, the
    feature names and ``_start``); no other class uses it.
    """

    def to_state(self) -> dict:
        """Everything the statistics hold, as numpy arrays and plain values.

        What :meth:`transform` needs (the vocabularies, the per-value and
        per-fold sums, the fold totals) and what a later :meth:`update` needs to
        keep growing them; :meth:`from_state` rebuilds an equal object.
        ``save_model`` stores it without pickle.

        Returns
        -------
        state : dict
            ``columns``, ``pairs``, ``n_folds``, ``smooth``, ``prior``, ``seed``,
            ``n_targets`` (None before the first update), ``vocabularies``
            (``(column, Index)`` pairs in code order: code ``i + 1`` is
            ``index[i]``, code 0 missing), ``pair_keys`` (per pair, the packed
            int64 keys in code order), ``fold_w`` ``(F,)``, ``fold_s`` and
            ``fold_q`` ``(F, k)``, ``sums`` (per source ``(w, s, q)`` of shapes
            ``(V, F)``, ``(V, F, k)`` and ``(V, F, k)`` or None),
            ``feature_names``, ``sources`` and ``rows_seen`` (None if unset).
        """
        state = {
            "columns": list(self.columns),
            "pairs": [tuple(p) for p in self.pairs],
            "n_folds": self.n_folds,
            "smooth": self.smooth,
            "prior": self.prior,
            "seed": self.seed,
            "n_targets": self._n_targets,
            "vocabularies": [(c, v.index) for c, v in self._vocab.items()],
            "pair_keys": [
                np.asarray(self._pair_vocab[p].index, dtype=np.int64)
                for p in self.pairs
            ],
            "rows_seen": getattr(self, "rows_seen_", None),
        }
        if self._n_targets is None:
            return state
        sums = []
        for s in self._sources:
            n_codes = len(self._pair_vocab[s] if len(s) == 2 else self._vocab[s[0]])
            st = self._stats[s]
            sums.append(
                tuple(
                    None if a is None else a[:n_codes].copy()
                    for a in (st.w, st.s, st.q)
                )
            )
        state.update(
            fold_w=self._fold_w.copy(),
            fold_s=self._fold_s.copy(),
            fold_q=self._fold_q.copy(),
            sums=sums,
            feature_names=list(self.feature_names_),
            sources=dict(self.sources_),
        )
        return state

    @classmethod
    def from_state(cls, state: dict):
        """The statistics :meth:`to_state` described, checked for consistency.

        Parameters
        ----------
        state : dict
            A :meth:`to_state` dict (its arrays may come from an untrusted file:
            every shape is checked).

        Returns
        -------
        statistics : TargetStatistics

        Raises
        ------
        ValueError
            If the arrays do not fit the vocabularies, folds and targets.
        """
        ts = cls(
            state["columns"],
            state["pairs"],
            n_folds=state["n_folds"],
            smooth=state["smooth"],
            prior=state["prior"],
            seed=state["seed"],
        )
        vocabularies = dict(state["vocabularies"])
        if set(vocabularies) != set(ts._vocab):
            raise ValueError(
                f"target statistics hold vocabularies of {sorted(vocabularies)}, "
                f"their sources need {sorted(ts._vocab)}."
            )
        for c, index in vocabularies.items():
            if not isinstance(index, pd.Index) or not index.is_unique:
                raise ValueError(f"vocabulary of {c!r} must be a unique Index.")
            ts._vocab[c].index = pd.Index(index, dtype=ts._vocab[c].dtype)
        if len(state["pair_keys"]) != len(ts.pairs):
            raise ValueError("target statistics need one key array per pair.")
        for p, keys in zip(ts.pairs, state["pair_keys"], strict=True):
            keys = pd.Index(np.asarray(keys, dtype=np.int64))
            if keys.ndim != 1 or not keys.is_unique:
                raise ValueError(f"keys of pair {p!r} must be unique int64 values.")
            ts._pair_vocab[p].index = keys
        if state["rows_seen"] is not None:
            ts.rows_seen_ = int(state["rows_seen"])
        if state["n_targets"] is None:
            return ts
        k = int(state["n_targets"])
        if k < 1:
            raise ValueError(f"n_targets must be >= 1, got {k}.")
        ts._n_targets = k
        ts._start()
        F = ts.n_folds

        def array(value, shape, what):
            value = np.array(value, dtype=np.float64)  # a writable copy
            if value.shape != shape:
                raise ValueError(f"{what} must have shape {shape}, got {value.shape}.")
            return value

        ts._fold_w = array(state["fold_w"], (F,), "fold_w")
        ts._fold_s = array(state["fold_s"], (F, k), "fold_s")
        ts._fold_q = array(state["fold_q"], (F, k), "fold_q")
        if len(state["sums"]) != len(ts._sources):
            raise ValueError("target statistics need sums for every source.")
        for s, (w, sm, q) in zip(ts._sources, state["sums"], strict=True):
            n_codes = len(ts._pair_vocab[s] if len(s) == 2 else ts._vocab[s[0]])
            st = ts._stats[s]
            st.w = array(w, (n_codes, F), f"sums of {s!r}")
            st.s = array(sm, (n_codes, F, k), f"sums of {s!r}")
            if (q is None) != (st.q is None):
                raise ValueError(
                    f"sums of squares of {s!r} must be stored exactly when "
                    "smooth='auto'."
                )
            if q is not None:
                st.q = array(q, (n_codes, F, k), f"squares of {s!r}")
        if (
            list(state["feature_names"]) != ts.feature_names_
            or {name: tuple(s) for name, s in state["sources"].items()} != ts.sources_
        ):
            raise ValueError(
                "target statistics' feature names or sources do not fit their "
                "columns and pairs."
            )
        return ts
