"""Data sources the training engine reads: rows in memory, one chunk, a
Parquet stream; what each answers the engine (statistics, batches, held-out
rows, a fingerprint).

A source answers the questions of :func:`~sk_fibinet.training.engine.train`
(see its module docstring): ``check``, ``n_rows``, ``can_hold_out``,
``epochs``, ``open_checkpoint`` and ``encode``. One module per job:

* ``frame_source``: ``FrameSource``, ``fit(X, y)``;
* ``chunk_source``: ``ChunkSource``, one ``partial_fit`` call;
* ``stream_source``: ``StreamSource``, ``fit(ParquetSource)``, on
  ``parquet`` (``ParquetSource``, the reader), ``stream_passes`` (the
  statistics passes), ``stream_batches`` (the epochs) and
  ``stream_checkpoint`` (how a source is recognised); ``stream_predict``
  predicts from a source;
* ``features``: the encoder and target-statistic columns every source builds
  from the model's parameters, so every path honours the same parameters;
* ``held_out``: the held-out rows and the target statistics they get.

Internal: use the names ``sk_fibinet`` exports."""
