"""
Big data: fit millions of rows streamed from Parquet
====================================================

Write a few million Criteo-shaped click-log rows to a folder of Parquet files,
one chunk at a time, and fit :class:`sk_fibinet.FiBiNETClassifier` on them
through a :class:`sk_fibinet.ParquetSource`: the rows are read batch by batch
and never held in memory as one table. The held-out file is scored the same
way, and the predictions are written to Parquet with
:meth:`~sk_fibinet.FiBiNETClassifier.predict_to_parquet`.

The default of 3,000,000 training rows and 2 epochs takes about 20 minutes
on a 2-core CPU (300,000 rows went through at about 4,800 rows/s per epoch
there, with one thread); pick the size with ``--n-rows``::

    python examples/plot_big_data_parquet.py                   # 3M rows
    python examples/plot_big_data_parquet.py --n-rows 300000   # about 2 minutes

The rows are drawn by ``CriteoLikeStream``, the generator with which the
repository's ``benchmarks/out_of_core.py`` compares streamed and in-memory
fits: 26 categorical columns (hashed ids, vocabularies up to 100,000, skewed
frequencies, missing values) and 13 numeric count columns; the label depends
on a few fields and two pairwise interactions.
See :doc:`/big_data` for what a streamed fit does and when to choose another
path.
"""

# %%
# Settings
# --------
# ``SK_FIBINET_EXAMPLES_SMOKE=1`` shrinks everything for a quick test run.
# Figures are saved as PNG files into ``$SK_FIBINET_EXAMPLES_OUT`` (default:
# the current directory); see the other examples. The Parquet files go to a
# temporary folder under ``--tmp`` (default: the system's), removed at the end.
import argparse
import atexit
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import log_loss, roc_auc_score
from skorch.callbacks import Callback

from sk_fibinet import FiBiNETClassifier, ParquetSource

SMOKE = os.environ.get("SK_FIBINET_EXAMPLES_SMOKE") == "1"
IN_GALLERY = "__file__" not in globals()
HERE = Path.cwd() if IN_GALLERY else Path(__file__).resolve().parent
OUT = os.environ.get("SK_FIBINET_EXAMPLES_OUT", None if IN_GALLERY else ".")


def save(fig, name):
    """Write ``fig`` to ``OUT/name`` (the figure stays open for sphinx-gallery)."""
    if OUT is not None:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=100)


def peak_rss_mb():
    """Peak resident memory of this process so far, in MB (Linux and macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # B or KiB


parser = argparse.ArgumentParser(description="Fit FiBiNET streamed from Parquet")
parser.add_argument("--n-rows", type=int, default=None, help="training rows")
parser.add_argument("--test-rows", type=int, default=None, help="held-out rows")
parser.add_argument("--max-epochs", type=int, default=None)
parser.add_argument("--tmp", default=None, help="folder for the temporary data")
args, _ = parser.parse_known_args()  # sphinx-gallery passes no arguments

n_rows = args.n_rows or (20_000 if SMOKE else 3_000_000)
n_test = args.test_rows or (5_000 if SMOKE else 100_000)
max_epochs = args.max_epochs or (1 if SMOKE else 2)

# %%
# Write the data, one chunk at a time
# -----------------------------------
# A click log arrives as many files: here one Parquet file per 500,000 rows,
# each written chunk by chunk with row groups of 50,000 rows, so the writer
# holds one chunk in memory at a time. The held-out file is drawn from the
# same structure with other seeds (every chunk of a ``CriteoLikeStream`` is
# seeded by its index). The row groups matter for training: the streamed fit
# shuffles by reading them in a random order and mixing their rows in a
# buffer (see :doc:`/big_data`), so a log sorted by time wants small ones.
sys.path.insert(0, str(HERE.parent / "benchmarks"))  # the generator lives there
from out_of_core import CriteoLikeStream  # noqa: E402

file_rows = 10_000 if SMOKE else 500_000
chunk_rows = 5_000 if SMOKE else 100_000
row_group_rows = 5_000 if SMOKE else 50_000
stream = CriteoLikeStream(seed=0)
schema = pa.schema(  # fixed, so that every chunk writes the same column types
    [(f"C{j}", pa.dictionary(pa.int32(), pa.string())) for j in range(1, 27)]
    + [(f"I{j}", pa.float64()) for j in range(1, 14)]
    + [("click", pa.int64())]
)


def write_file(path, first_chunk, n):
    """Write ``n`` rows of chunks ``first_chunk, ...`` to one Parquet file."""
    with pq.ParquetWriter(path, schema) as writer:
        for k, start in enumerate(range(0, n, chunk_rows)):
            X, y = stream.chunk(first_chunk + k, min(chunk_rows, n - start))
            # The categories of a chunk list the whole vocabulary (up to
            # 100,000 ids), and Parquet would store them all in every row
            # group's dictionary: keep those the chunk uses.
            for column in X.select_dtypes("category"):
                X[column] = X[column].cat.remove_unused_categories()
            table = pa.Table.from_pandas(
                X.assign(click=y), schema=schema, preserve_index=False
            )
            writer.write_table(table, row_group_size=row_group_rows)


folder = Path(tempfile.mkdtemp(prefix="sk_fibinet_big_data_", dir=args.tmp))
atexit.register(shutil.rmtree, folder, ignore_errors=True)  # also if we fail
train_dir = folder / "train"
train_dir.mkdir()
test_file = folder / "test.parquet"
start = time.perf_counter()
for k, first in enumerate(range(0, n_rows, file_rows)):
    n = min(file_rows, n_rows - first)
    write_file(train_dir / f"part-{k:03d}.parquet", first // chunk_rows, n)
write_file(test_file, 10**6, n_test)  # chunks no training file uses
write_seconds = time.perf_counter() - start
on_disk = sum(p.stat().st_size for p in train_dir.iterdir()) / 2**20
rss_before_fit = peak_rss_mb()
print(f"training data: {n_rows:,} rows in {len(list(train_dir.iterdir()))} files")
print(f"on disk:       {on_disk:,.0f} MB (Parquet), written in {write_seconds:.0f} s")
print(f"held-out:      {n_test:,} rows in {test_file.name}")
print(f"peak RSS so far (Python, torch, the writer): {rss_before_fit:,.0f} MB")

# %%
# Fit from the Parquet folder
# ---------------------------
# ``ParquetSource(folder, target="click")`` goes where ``X`` goes; ``y`` stays
# None. ``fit`` first reads the source once to count the categories of every
# column and to draw a 200,000-row sample for the numeric bins, then streams
# ``max_epochs`` epochs through a 100,000-row shuffle buffer. 10 % of the rows
# (at most 100,000, chosen by a seeded hash of the row position) are held out
# for early stopping and the temperature calibration, as in an in-memory fit.
#
# The parameters are the defaults (a smaller network in smoke mode), with a
# fixed seed. A small callback records, after every training batch, the
# elapsed time, the rows trained so far and the process's peak resident memory
# (``resource.getrusage``); it is only there to draw the figure below. Run
# inside sphinx-gallery, the peak is that of the documentation build's process.


class MemoryTrace(Callback):
    """Rows trained and peak RSS after every training batch."""

    def on_train_begin(self, net, **kwargs):
        self.start_ = time.perf_counter()
        self.trace_ = [(0.0, 0, peak_rss_mb())]  # (seconds, rows, MB)
        self.epoch_ends_ = []

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            rows = self.trace_[-1][1] + len(batch[1])  # batch[1]: (batch, 2)
            self.trace_.append((time.perf_counter() - self.start_, rows, peak_rss_mb()))

    def on_epoch_end(self, net, **kwargs):
        self.epoch_ends_.append(time.perf_counter() - self.start_)


trace = MemoryTrace()
clf = FiBiNETClassifier(
    max_epochs=max_epochs,
    random_state=0,
    callbacks=[("memory_trace", trace)],
    **(dict(embedding_dim=4, hidden_layer_sizes=(16,)) if SMOKE else {}),
)
train = ParquetSource(train_dir, target="click")
start = time.perf_counter()
clf.fit(train)
fit_seconds = time.perf_counter() - start
first_pass_seconds = trace.start_ - start  # first pass and set-up
rss_after_fit = peak_rss_mb()
print(f"epochs run:    {clf.n_iter_}")
print(f"fit time:      {fit_seconds:.0f} s, {first_pass_seconds:.0f} s before training")
print(f"rows/s:        {train.n_rows * clf.n_iter_ / fit_seconds:,.0f} (rows x epochs)")
print(f"peak RSS:      {rss_after_fit:,.0f} MB after the fit")

# %%
# Held-out evaluation, streamed too
# ---------------------------------
# ``predict_proba`` takes a source and returns an array, reading and
# predicting one batch at a time; the source's extra ``click`` column is not
# read. Only the label column is loaded to score the predictions.
proba = clf.predict_proba(ParquetSource(test_file))[:, 1]
y_test = pq.read_table(test_file, columns=["click"])["click"].to_numpy()
base_rate = float(np.mean(y_test))
auc = roc_auc_score(y_test, proba)
loss = log_loss(y_test, proba)
base_loss = log_loss(y_test, np.full(len(y_test), base_rate))
print(f"test ROC AUC:       {auc:.4f}")
print(f"test log loss:      {loss:.4f}")
print(f"base rate log loss: {base_loss:.4f} (always the held-out click rate)")

# %%
# ``predict_to_parquet`` writes the predictions next to the input instead of
# returning them: one batch in memory at a time, whatever the size of the
# source. ``columns`` copies source columns in front of the predictions (an
# id, or here the label).
scores = clf.predict_to_parquet(
    ParquetSource(test_file),
    folder / "scores.parquet",
    method="predict_proba",
    columns=["click"],
)
written = pq.read_table(scores).to_pandas()
print(written.head())
print("same as predict_proba:", np.allclose(written["proba_1"], proba))
print(f"peak RSS:      {peak_rss_mb():,.0f} MB after the predictions")

# %%
# Training loss, batch by batch
# -----------------------------
# The history of a streamed fit is that of an in-memory fit
# (``sk_fibinet.plotting.plot_learning_curves(clf)`` draws it per epoch). With
# an epoch of millions of rows the batches tell more: here the training loss
# of every batch (and its running mean over 1 % of an epoch) against the rows
# trained, and the validation loss after each epoch. Early stopping keeps the
# weights of the epoch with the lowest calibrated validation loss; CTR models
# with large embedding tables often overfit from the second pass on.
history = clf.net_.history
losses = history[:, "batches", :, "train_loss"]  # a list per epoch
batch_loss = np.concatenate(losses)
batch_rows = np.cumsum(np.concatenate(history[:, "batches", :, "train_batch_size"]))
epoch_rows = batch_rows[np.cumsum([len(epoch) for epoch in losses]) - 1]
window = max(1, len(batch_loss) // (100 * clf.n_iter_))
fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
ax.plot(batch_rows / 1e6, batch_loss, color="#3b75af", alpha=0.25, linewidth=0.5)
ax.plot(
    batch_rows / 1e6,
    pd.Series(batch_loss).rolling(window, min_periods=1).mean(),
    color="#3b75af",
    label=f"training loss (running mean of {window} batches)",
)
ax.plot(
    epoch_rows / 1e6,
    history[:, "valid_loss_calibrated"],
    "o-",
    color="#dd8452",
    label="validation loss, calibrated (early stopping)",
)
ax.axhline(base_loss, color="grey", linestyle="--", label="always the click rate")
ax.set_xlabel("rows trained (millions)")
ax.set_ylabel("log loss")
ax.set_ylim(0.9 * min(batch_loss.min(), loss), 1.1 * base_loss)
ax.set_title(f"Streamed fit of {n_rows:,} rows, epochs: {clf.n_iter_}")
ax.legend()
save(fig, "big_data_parquet_loss.png")

# %%
# Memory while streaming
# ----------------------
# Top: rows trained against time; the slope is the training speed, and the
# flat part at the start (shaded) is the first pass, which counts the
# categories and samples the bins, and the set-up of the network. Bottom: the
# process's peak resident memory. It grows a little during the first epoch,
# as the buffers and the held-out rows fill, and then stays flat: it depends
# on the batch, the shuffle buffer, the bin sample, the held-out rows and the
# vocabularies, not on the number of rows (``benchmarks/out_of_core.py``
# compares 1M and 10M rows).
seconds, rows, peak = np.array(trace.trace_).T
seconds = seconds + first_pass_seconds  # time since fit() was called
fig, (top, bottom) = plt.subplots(
    2, 1, figsize=(7, 5.5), sharex=True, layout="constrained"
)
top.plot(np.r_[0, seconds], np.r_[0, rows] / 1e6, color="#3b75af")
top.set_ylabel("rows trained (millions)")
top.set_title(f"Streamed fit of {n_rows:,} rows, epochs: {clf.n_iter_}")
bottom.plot(seconds, peak, color="#c44e52")
bottom.axhline(rss_before_fit, color="grey", linestyle="--", linewidth=1)
bottom.annotate(
    "before fit()", (0, rss_before_fit), textcoords="offset points", xytext=(4, 4)
)
bottom.set_ylabel("peak RSS of the process (MB)")
bottom.set_xlabel("seconds since fit() was called")
bottom.set_ylim(0, max(peak.max(), rss_before_fit) * 1.15)
for ax in (top, bottom):
    ax.axvspan(0, first_pass_seconds, color="#eeeeee", zorder=0)
    for end in np.asarray(trace.epoch_ends_) + first_pass_seconds:
        ax.axvline(end, color="grey", linestyle=":", linewidth=1)
top.text(
    first_pass_seconds / 2,
    0.95,
    "first pass\nand set-up",
    transform=top.get_xaxis_transform(),  # x: seconds, y: share of the height
    ha="center",
    va="top",
    fontsize=9,
)
save(fig, "big_data_parquet_memory.png")

# %%
# Which path for your data?
# -------------------------
# Streaming from Parquet, as here, fits one model on one machine from files
# larger than memory, with early stopping, calibration and checkpoints within
# an epoch (``checkpoint_dir``), at the cost of a reading pass before training
# and of a shuffle limited to the buffer. Data that arrives over time, or
# already lives in a Dask cluster, suits ``partial_fit`` (with dask-ml's
# ``Incremental``): one pass per chunk, the encoding fixed by the first chunk
# (``hash_buckets`` for ids met later), no early stopping. When compute rather
# than memory is the limit and there are several GPUs or machines,
# ``distributed=True`` under ``torchrun`` trains data-parallel, with the whole
# table in memory in every process. :doc:`/big_data` compares the three.
#
# Clean up
# --------
shutil.rmtree(folder, ignore_errors=True)
print("removed", folder)
