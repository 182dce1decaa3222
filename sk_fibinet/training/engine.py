"""The training engine: one recipe for every way of training a FiBiNET estimator.

``fit(X, y)``, ``fit(ParquetSource)``, ``partial_fit``, ``distributed=True``
and ``checkpoint_dir`` are inputs to :func:`train`, not copies of it. What
differs between them is the data, and a data source answers the engine's
questions about it (``data.frame_source.FrameSource``,
``data.chunk_source.ChunkSource``, ``data.stream_source.StreamSource``):

* ``check(model, first)``: validate the input, learn what the targets need
  (``classes_``, the target scaling) and the feature names;
* ``n_rows`` and ``can_hold_out``: how many rows, and whether rows may be held
  out for early stopping (a ``partial_fit`` chunk may not);
* ``open_checkpoint(model, seed, processes)``: a fingerprint of the data and
  the checkpoint to resume from;
* ``encode(model, seed, hold_out, checkpoint)``: the encoder (learned by the
  first fit, reused when a net is continued) and the rows, as a
  :class:`Encoded`: training rows for skorch, held-out rows, a sample of rows
  for the explanations, and the training codes' counts.

The recipe (seed -> checkpoint -> encoder and rows -> callbacks -> net ->
skorch's loop -> after training) is then written once, here. The model is
trained on a scratch copy of the estimator and its fitted state replaces the
estimator's only when everything succeeded, so a refused or interrupted
``fit`` leaves a fitted model as it was (``partial_fit`` continues the net in
place: a call that fails validation changes nothing, one interrupted while
training keeps the batches it trained).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.base import is_classifier
from sklearn.utils import check_random_state
from skorch.callbacks import ProgressBar
from skorch.helper import predefined_split

from ..nn.pairs import crossable_pairs
from ..nn.precision import first_layer_dtype
from ..preprocessing import cross_evidence as _cross_evidence
from ..preprocessing import triple_evidence as _triple_evidence
from . import distributed as _distributed
from .net import _CodesDataset, _StopOnNonFinite

# A pair of fields is crossed only if its combinations could get this many
# training rows each on average; below that the weights would memorise rows.
CROSS_MIN_ROWS_PER_CELL = 4
# early_stopping="auto" holds rows out from this many rows on.
AUTO_EARLY_STOPPING_ROWS = 1_000
# Parameters a continued net (partial_fit) applies when they were changed with
# set_params since it was built; changing the others needs a new fit.
CONTINUABLE_PARAMS = (
    "learning_rate",
    "batch_size",
    "verbose",
    "callbacks",
    "precision",
)
# Parameters that never change what partial_fit trains (it holds nothing out
# and writes no checkpoint).
_UNUSED_BY_PARTIAL_FIT = (
    "max_epochs",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "checkpoint_dir",
    "distributed",
    "device",
    "random_state",
)


@dataclass
class Encoded:
    """What a data source hands the engine once its rows are encoded.

    Attributes
    ----------
    encoder : FieldEncoder
        The fitted encoder.
    train : Dataset
        The training rows as skorch reads them (codes and targets in memory,
        or a stream of them).
    n_train : int
        Number of training rows.
    valid : _CodesDataset or None
        The held-out rows, or None.
    kept : _CodesDataset
        Rows whose mean SENET weights are ``senet_weights_`` (all rows, or a
        sample of them).
    explain_rows : _CodesDataset
        Rows the importances are measured on when nothing is held out.
    centre_rows : _CodesDataset or None
        Rows the regressor may centre its intercept on when nothing is held
        out (None: it is not centred).
    counts : callable
        Returns the training codes' counts ``(n_codes,)``; a stream knows them
        only after a pass, so they are asked for when needed.
    after_fit : callable
        Called after skorch's loop, before the counts are read (a stream
        resumed from a finished checkpoint reads its rows once there).
    evidence : (_CodesDataset, ndarray of bool) or None
        Training rows (codes and targets) that ``cross_pairs="auto"`` asks the
        candidate pairs for evidence on (the training rows in memory, the first
        chunk, or a stream's bin sample), and which of them form the first
        half (a seeded hash of each row's position). None: every pair within
        ``max_cross_cells`` is crossed.
    finish : callable
        ``finish(model)``, called last, once everything that reads the
        held-out rows is done: the target statistics then take in the
        held-out rows' targets too, so that prediction uses every training
        row, as a fit without early stopping does.
    """

    encoder: object
    train: object
    n_train: int
    valid: _CodesDataset | None
    kept: _CodesDataset
    explain_rows: _CodesDataset
    centre_rows: _CodesDataset | None
    counts: object
    after_fit: object = field(default=lambda: None)
    evidence: tuple | None = None
    finish: object = field(default=lambda model: None)


def _is_fitted_attribute(name: str) -> bool:
    return (name.endswith("_") and not name.startswith("__")) or name in (
        "_code_counts",
        "_trained_params",
    )


def _scratch(model, *, keep_fitted: bool):
    """A shallow copy of ``model`` to train on (without its fitted state)."""
    new = object.__new__(type(model))
    state = dict(model.__dict__)
    if not keep_fitted:
        state = {k: v for k, v in state.items() if not _is_fitted_attribute(k)}
    new.__dict__.update(state)
    return new


def _commit(model, new) -> None:
    """Replace ``model``'s fitted state with ``new``'s (its parameters stay)."""
    for name in [k for k in model.__dict__ if _is_fitted_attribute(k)]:
        del model.__dict__[name]
    for name, value in new.__dict__.items():
        if _is_fitted_attribute(name):
            model.__dict__[name] = value


def draw_seed(model) -> int:
    """The fit's seed, drawn from ``random_state``."""
    return int(check_random_state(model.random_state).randint(np.iinfo(np.int32).max))


def early_stopping_on(model, n_rows: int) -> bool:
    """Whether a fit of ``n_rows`` rows holds rows out and stops early."""
    early = model.early_stopping
    if early == "auto":
        early = n_rows >= AUTO_EARLY_STOPPING_ROWS
    return bool(early)


def _callbacks(model, *, hold_out: bool, processes, checkpoint) -> list:
    callbacks = list(model.callbacks or [])
    if hold_out:
        callbacks += model._monitor_callbacks()
    callbacks.append(("stop_on_non_finite", _StopOnNonFinite()))
    if model.verbose >= 2:  # a bar within each epoch (tqdm, via skorch)
        callbacks.append(("progress_bar", ProgressBar(postfix_keys=["train_loss"])))
    if processes is not None:
        callbacks = _distributed.add_callbacks(callbacks, processes)
    if checkpoint is not None:  # last: it saves what the others have updated
        callbacks.append(("checkpoint", checkpoint))
    return callbacks


def _trained_params(model) -> dict:
    """The parameters a net was built and trained with (see ``_continue``)."""
    return {
        k: v
        for k, v in model.get_params(deep=False).items()
        if k not in _UNUSED_BY_PARTIAL_FIT
    }


def _continue(model) -> None:
    """Prepare ``model.net_`` for one more pass (``partial_fit``).

    Drops the validation split and early stopping a ``fit`` may have set up
    (``partial_fit`` holds nothing out; skorch's early stopping would also
    restore its best epoch at the end of every call), and applies
    ``learning_rate``, ``batch_size`` and ``precision`` changed with
    ``set_params`` since the net was built. Other changed parameters would be
    silently ignored, so they are refused.
    """
    net = model.net_
    before = getattr(model, "_trained_params", None)
    now = _trained_params(model)
    if before is not None:
        changed = sorted(k for k in now if k in before and not _same(now[k], before[k]))
        refused = [k for k in changed if k not in CONTINUABLE_PARAMS]
        if refused:
            listed = ", ".join(f"{k}={now[k]!r} (was {before[k]!r})" for k in refused)
            raise ValueError(
                f"partial_fit cannot apply {listed}: they were changed with "
                "set_params since the network was built and shape what it "
                "learns; call fit to train a new network with them "
                f"(partial_fit applies {', '.join(CONTINUABLE_PARAMS)})."
            )
        if "learning_rate" in changed:
            ratio = float(now["learning_rate"]) / float(before["learning_rate"])
            for group in net.optimizer_.param_groups:  # the linear part keeps x10
                group["lr"] = group["lr"] * ratio
            net.lr = float(now["learning_rate"])
        if "batch_size" in changed:
            net.batch_size = int(now["batch_size"])
        if "verbose" in changed:
            net.verbose = int(now["verbose"])
        if "precision" in changed and hasattr(net.module_, "first_layer_dtype"):
            net.module_.first_layer_dtype = first_layer_dtype(
                now["precision"], net.device
            )
    present = {name for name, _ in net.callbacks_}
    params = {
        f"callbacks__{name}": None
        for name, _ in model._monitor_callbacks()
        if name in present
    }
    if net.train_split is not None or params:
        net.set_params(train_split=None, **params)
        net.initialize_callbacks()  # set_params leaves None in callbacks_


def _same(a, b) -> bool:
    try:
        return bool(a == b) if not isinstance(a, (list, tuple)) else list(a) == list(b)
    except (TypeError, ValueError):  # arrays and the like
        return a is b


def _forget_training_rows(net) -> None:
    """Drop what a fitted net would otherwise carry into a pickle: the held-out
    rows (skorch's ``predefined_split`` keeps them in ``train_split``) and early
    stopping's copy of the best weights (they are the net's weights now)."""
    net.train_split = None
    for _, cb in getattr(net, "callbacks_", []):
        if getattr(cb, "best_model_weights_", None) is not None:
            cb.best_model_weights_ = None


def _asks_pair_evidence(model, n_train: int) -> bool:
    return (
        model.cross_pairs == "auto"
        and model.linear
        and model.variant == "fibinet"
        and model.max_cross_cells > 0
        and n_train >= _cross_evidence.MIN_ROWS
    )


def _asks_triple_evidence(model, n_train: int) -> bool:
    return (
        model.cross_triples == "auto"
        and model.variant == "fibinet"
        and n_train >= _cross_evidence.MIN_ROWS
    )


def asks_cross_evidence(model, n_train: int) -> bool:
    """Whether a fit of ``model`` on ``n_train`` training rows chooses its
    crossed pairs (``cross_pairs="auto"``, see
    :mod:`~sk_fibinet.preprocessing.cross_evidence`) or its crossed triples
    (``cross_triples="auto"``, :mod:`~sk_fibinet.preprocessing.triple_evidence`)
    by held-out evidence; a stream asks before its first pass, to keep its bin
    sample's rows."""
    return _asks_pair_evidence(model, n_train) or _asks_triple_evidence(model, n_train)


def _choose_crosses(model, data, cross_cells: int):
    """The pairs the linear part crosses (None: every pair within
    ``cross_cells``) and the triples that become derived fields, chosen by
    held-out evidence on ``data.evidence``; the pairs' evidence, measured once,
    also ranks the candidate triples."""
    pairs_asked = cross_cells > 0 and _asks_pair_evidence(model, data.n_train)
    triples_asked = _asks_triple_evidence(model, data.n_train)
    if data.evidence is None or not (pairs_asked or triples_asked):
        return None, []
    rows, first_half = data.evidence
    target = rows.target[:, 0].numpy()  # (n,) class index or scaled target
    classification = is_classifier(model)
    if classification and model._n_outputs() > 1:  # one column per class
        target = np.eye(model._n_outputs())[target.astype(np.int64)]  # (n, k)
    evidence = dict(
        codes=rows.codes.numpy(),
        target=target,
        weight=rows.target[:, 1].numpy(),
        cardinalities=list(data.encoder.cardinalities_),
        first_half=first_half,
        classification=classification,
    )
    pairs, gains = None, {}
    if pairs_asked:
        gains = _cross_evidence.crossable_pair_gains(max_cells=cross_cells, **evidence)
        pairs = [pair for pair, gain in gains.items() if gain > 0]
    triples = []
    if triples_asked:
        triples = _triple_evidence.select_triples(pair_gain=gains, **evidence)
    if triples and pairs is None and cross_cells > 0:  # not the derived fields
        pairs = crossable_pairs(evidence["cardinalities"], cross_cells)
    return pairs, triples


def _add_derived_fields(data, triples) -> None:
    """Give the encoder the derived fields of ``triples`` and append their
    codes to every dataset of ``data`` held in memory (a stream's batches are
    encoded with them as they are read)."""
    data.encoder.add_crosses(triples)
    datasets = [data.train, data.valid, data.kept, data.explain_rows]
    datasets.append(data.centre_rows)
    done = set()
    for dataset in datasets:
        if isinstance(dataset, _CodesDataset) and id(dataset) not in done:
            done.add(id(dataset))
            codes = data.encoder.cross_codes(dataset.codes.numpy())  # (n, F)
            dataset.codes = torch.from_numpy(codes)


def train(model, source, *, continue_net: bool = False):
    """Train ``model`` on ``source``; return ``model``.

    Parameters
    ----------
    model : BaseFiBiNET
        The estimator; its fitted state is replaced when training succeeded.
    source : data source
        ``FrameSource``, ``ChunkSource`` or ``StreamSource``.
    continue_net : bool, default=False
        Train ``model.net_`` one more epoch on the source's rows, keeping the
        encoder, the targets' encoding and the optimizer state
        (``partial_fit``); otherwise learn everything anew (``fit``, and the
        first ``partial_fit``).

    Returns
    -------
    model : BaseFiBiNET
    """
    first = not continue_net
    new = _scratch(model, keep_fitted=continue_net)
    processes = None
    if first:
        device = new._device()
        hidden = new._hidden_sizes()
    else:
        _continue(new)  # refuses parameters it cannot apply, before any change
    source.check(new, first=first)
    if not first and source.n_rows == 0:
        return model  # an empty chunk: nothing to learn
    if first:
        processes, device = _distributed.start(new.distributed, device)

    if first:
        seed = draw_seed(new)
        if processes is not None:  # random_state=None draws one per process
            seed = processes.broadcast_seed(seed)
        hold_out = source.can_hold_out and early_stopping_on(new, source.n_rows)
        checkpoint = source.open_checkpoint(new, seed, processes)
        if checkpoint is not None:
            seed = checkpoint.header["seed"]  # a resumed fit keeps its split
    else:
        seed, hold_out, checkpoint = int(new.net_.shuffle_seed), False, None
    data = source.encode(new, seed=seed, hold_out=hold_out, checkpoint=checkpoint)

    if first:
        cross_cells = 0
        if new.linear and new.variant == "fibinet":  # crosses need rows per cell
            cross_cells = min(
                new.max_cross_cells, data.n_train // CROSS_MIN_ROWS_PER_CELL
            )
        cross_pairs, triples = _choose_crosses(new, data, cross_cells)
        if triples:
            _add_derived_fields(data, triples)
        callbacks = _callbacks(
            new,
            hold_out=data.valid is not None,
            processes=processes,
            checkpoint=checkpoint,
        )
        net = new._build_net(
            encoder=data.encoder,
            hidden=hidden,
            n_outputs=new._n_outputs(),
            cross_cells=cross_cells,
            cross_pairs=cross_pairs,
            device=device,
            train_split=None if data.valid is None else predefined_split(data.valid),
            callbacks=callbacks,
            seed=seed,
            # embedding_l2 divides by each code's training count (a stream reads
            # its rows once to count them)
            code_counts=data.counts() if new.embedding_l2 else None,
        )
        new.encoder_ = data.encoder
        new.net_ = net
        _distributed.attach(net, processes)
        n_epochs_before = 0
    else:
        net = new.net_
        n_epochs_before = len(net.history)
    try:
        # the net never draws from torch's global generator: its initial
        # weights and every step's dropout masks come from generators seeded
        # from (seed, epoch, batch), so fits in threads do not disturb each other
        if source.epochs is None:  # max_epochs, or until early stopping
            net.fit(data.train, None)
        else:
            net.partial_fit(data.train, None, epochs=source.epochs)
    finally:
        _distributed.detach(net)  # no process group, no checkpoint in the fitted net
    data.after_fit()
    counts = data.counts()  # (R,) codes of this fit's (or chunk's) training rows
    if first:
        net.module_.fill_untrained_rows(counts=counts)
    new.n_iter_ = len(net.history)
    new._after_training(
        data.valid,
        train_ds=data.centre_rows,
        broadcast=None if processes is None else processes.broadcast_float,
    )
    _forget_training_rows(net)
    new.senet_weights_ = new._field_weights(data.kept, mean=True)  # (F,)
    if not first and getattr(new, "_code_counts", None) is not None:
        counts = counts + new._code_counts  # references average over every chunk
    new._learn_explanations(
        data.explain_rows,
        data.valid,
        seed,
        counts,
        n_train=data.n_train,
        n_epochs=new.n_iter_ - n_epochs_before,
    )
    data.finish(new)
    new._trained_params = _trained_params(new)
    _commit(model, new)
    return model
