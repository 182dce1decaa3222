"""``fit(ParquetSource)``: the data source the training engine reads from Parquet.

:class:`StreamSource` answers the questions of
:func:`~sk_fibinet.training.engine.train` (see its module docstring) for a
:class:`~sk_fibinet.data.parquet.ParquetSource`: it checks the source, opens the
checkpoint, runs the statistics passes (:mod:`sk_fibinet.data.stream_passes`)
and hands skorch the stream of training batches of every epoch
(:mod:`sk_fibinet.data.stream_batches`). The held-out rows are chosen by a
seeded hash of the row position (:mod:`sk_fibinet.data.held_out`), so the
same rows are held out in every epoch; they are filled during the first epoch.

With ``checkpoint_dir`` the fit saves every ``checkpoint_every_n_batches``
training batches and every epoch, and resumes from the last save: the first
pass runs again with the seed of the checkpoint, and the interrupted epoch
reads and shuffles its rows again, dropping the batches already trained (see
``_StreamBatches``); how the source is recognised is in
:mod:`sk_fibinet.data.stream_checkpoint`.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from ..training.engine import Encoded
from ..training.net import _CodesDataset
from . import stream_checkpoint as _stream_checkpoint
from .features import with_statistics
from .held_out import add_held_out_rows, first_half
from .stream_batches import _StreamDataset
from .stream_passes import _learn_encoding


class StreamSource:
    """A :class:`ParquetSource` as the training engine reads it (``fit(source)``).

    The first pass (``_learn_encoding``) learns the encoder and the targets'
    encoding; the held-out rows are chosen by a seeded hash of the row
    position and filled during the first epoch, with a sample of all rows
    for the explanations (see the module docstring).
    """

    epochs = None  # max_epochs, or until early stopping
    can_hold_out = True
    processes = None  # a distributed fit's, from open_checkpoint to encode

    def __init__(self, source, y=None, sample_weight=None):
        self.source, self.y, self.sample_weight = source, y, sample_weight

    def check(self, model, *, first: bool = True) -> None:
        source = self.source
        if self.y is not None:
            raise ValueError(
                "y must be None when X is a ParquetSource: the target is the "
                "source's target column, ParquetSource(..., target='name')."
            )
        if self.sample_weight is not None:
            raise ValueError("sample_weight is not supported with a ParquetSource.")
        if source.target is None:
            raise ValueError(
                "To fit on a ParquetSource, name its target column: "
                "ParquetSource(data, target='name')."
            )
        if source.shuffle_buffer < model.batch_size:
            raise ValueError(
                f"The source's shuffle_buffer={source.shuffle_buffer} is smaller "
                f"than batch_size={model.batch_size}; raise shuffle_buffer."
            )
        self.n_rows = source.n_rows
        if self.n_rows == 0:
            raise ValueError("The Parquet source has 0 rows; at least 1 is required.")
        validate_data(
            model,
            source._empty_frame(source.feature_names),
            reset=True,
            skip_check_array=True,
        )  # n_features_in_, feature_names_in_

    def open_checkpoint(self, model, seed: int, processes):
        self.statistics = None
        self.processes = processes  # the scans below read this process's share
        if processes is not None:  # every process streams the same source
            processes.check_same(
                _stream_checkpoint.source_fingerprint(model, self.source)
            )
        if model.checkpoint_dir is None:
            return None
        self.statistics = _stream_checkpoint.StatisticsDigest()
        return _stream_checkpoint.open_source_checkpoint(
            model, self.source, seed, processes
        )

    def encode(self, model, *, seed: int, hold_out: bool, checkpoint) -> Encoded:
        source, n_rows = self.source, self.n_rows
        keep_frac = min(1.0, source.max_validation_rows / n_rows)
        valid_frac = min(model.validation_fraction, keep_frac) if hold_out else 0.0
        # the held-out rows join the statistics once fitted (finish)
        learned = _learn_encoding(
            model,
            source,
            seed=seed,
            valid_frac=valid_frac,
            statistics=self.statistics,
        )
        encoder, target_summary, n_valid, statistics, self._held_out, sample = learned
        if statistics is not None:  # a clear error for clashing column names
            with_statistics(
                source._empty_frame(source.feature_names),
                statistics.feature_names_,
                np.empty((0, len(statistics.feature_names_))),
            )
        model.target_stats_ = statistics
        if checkpoint is not None:
            _stream_checkpoint.check_statistics(checkpoint, self.statistics.hexdigest())
        targets = model._targets_from_stats(target_summary)
        if hold_out and (n_valid < 1 or n_rows - n_valid < 1):
            _refuse_split(model, n_rows)
        stream = _StreamDataset(
            source,
            encoder,
            targets,
            seed=seed,
            valid_frac=valid_frac,
            keep_frac=keep_frac,
            n_train=n_rows - n_valid,
            statistics=statistics,
        )

        processes, self.processes = self.processes, None  # not kept after fit

        def counts():
            stream.scan(processes)  # one read-only pass, if no epoch has run
            return stream.code_counts

        def after_fit():
            if checkpoint is not None and checkpoint.resumed_finished_:
                stream.scan(processes)  # no epoch ran: read what the first would

        return Encoded(
            encoder=encoder,
            train=stream,
            n_train=stream.n_train,
            valid=stream.valid if hold_out else None,  # filled by the first pass
            kept=stream.kept,  # filled by the first pass
            explain_rows=stream.kept,
            centre_rows=None,
            counts=counts,
            after_fit=after_fit,
            evidence=_evidence(stream, sample, seed),
            finish=self._add_held_out_statistics,
        )

    def _add_held_out_statistics(self, model) -> None:
        """Give the target statistics the held-out rows' targets as well, as
        :meth:`~sk_fibinet.data.frame_source.FrameSource.encode` does: they
        decided early stopping with statistics of the training rows; prediction
        uses all."""
        held, self._held_out = self._held_out, []
        if held:
            add_held_out_rows(model.target_stats_, held)


def _evidence(stream, sample, seed: int):
    """The bin sample's training rows as codes and targets, encoded as the
    training batches are, and their halves: what ``cross_pairs="auto"`` asks
    the pairs for evidence on (every training row when the sample holds them
    all, as in memory); None without a sample."""
    if sample is None or not sample[2].any():
        return None
    frame, positions, train = sample
    frame, positions = frame[train].reset_index(drop=True), positions[train]
    codes, target_weight = stream.encode_frame(
        frame, positions, np.ones(len(frame), dtype=bool)
    )  # (n, F), (n, 2)
    return _CodesDataset(codes, target_weight), first_half(positions, seed)


def _refuse_split(model, n_rows: int):
    raise ValueError(
        f"validation_fraction={model.validation_fraction} leaves no "
        f"training or validation data for {n_rows} samples; use "
        "early_stopping=False."
    )
