"""The text the estimators' docstrings share, and how it gets into them.

A description that the classifier and the regressor (or their methods) give in
the same words is written once, here, in :data:`SHARED`. A docstring names it
by a ``$name`` placeholder at the start of a line (after the indentation), and
:func:`fill_doc`, applied when the class is created, puts the text in its
place, so ``help()`` and the Sphinx pages show every parameter in full. The
class keeps each entry's ``name : type, default=...`` line, the facts that
differ between the estimators; text after the placeholder on its line carries
on from the shared text's last line.
"""

from __future__ import annotations

import re
import textwrap

_PLACEHOLDER = re.compile(r"^( *)\$(\w+)", re.MULTILINE)

_TEXTS = {
    # the opening paragraph of both class docstrings
    "network": """
        Every column becomes an embedding field: categorical columns through a
        vocabulary learned in ``fit`` (missing, rare and unseen values have reserved
        codes), numeric columns through quantile bins (NaN has its own code). The
        network (Huang, Zhang & Zhang, RecSys 2019) re-weights the fields with a
        SENET layer, crosses every pair of fields with bilinear interactions on
        both the plain and the re-weighted embeddings, and feeds both to a DNN
        """,
    # -------------------------------------------------------------- parameters
    "categorical_features": """
        Which columns are categorical. ``"auto"``: category, string, object and
        bool columns of a DataFrame (a plain array is then all numeric). Also a
        boolean mask, column indices or column names; None for none.
        """,
    "min_frequency": """
        Categories seen fewer times in the training data share one code with
        categories never seen in training (so that code is trained, and ids
        seen once do not get an embedding of their own to memorise).
        """,
    "hash_buckets": """
        Open vocabularies: categorical columns listed here learn no vocabulary
        but map every value by a stable hash (MurmurHash3 of its text with a
        fixed seed, the same in every process, release and exported ONNX
        graph; models saved before it keep pandas' SipHash) to one of this
        many buckets, each with its own embedding row; an int applies to every
        categorical column,
        a dict maps column names (positions, for arrays) to an int or None.
        Values first met after ``fit`` or after the first ``partial_fit`` call
        then get trained rows, at the price of collisions (values sharing a
        bucket share a row) and of memory for every bucket, seen or not;
        ``min_frequency`` does not apply to them. None: every categorical
        column keeps the exact vocabulary of the data it was fitted on.
        """,
    "embedding_dim_auto": """
        FiBiNET's first DNN layer reads ``2 P d`` values for the ``P = F (F - 1)
        / 2`` pairs of ``F`` fields, so a fit costs about ``F^2 d``. ``"auto"``
        takes the widest ``d`` up to that default that keeps ``2 P d`` within
        15,000, but at least 4: 44 fields get 7, 50 fields 6, 70 fields 4.
        FiBiNet++ (``variant="fibinet++"``) gets the default in full. An int
        is used as given.
        """,
    "n_bins": """
        Maximum number of quantile bins per numeric column: edges at quantiles
        of the values, plus quantiles of the distinct values where a spike of
        one value leaves the budget unused. A column with few distinct values
        keeps them apart instead, one bin each: at most ``n_bins`` of them, or
        at most 255 seen 20 times each on average (ages, counts, amounts from
        a short list), as ``HistGradientBoostingClassifier`` does.
        """,
    "reduction_ratio": """
        SENET reduction: the hidden excitation layer has
        ``max(1, n_fields // reduction_ratio)`` units.
        """,
    "senet_activation": "Activation after the second excitation layer.",
    "bilinear_type": """
        One shared ``d x d`` matrix, one per field, or one per field pair.
        """,
    "shared_bilinear": """
        Share the bilinear weights between the plain and the SENET branch.
        """,
    "hidden_layer_sizes": "Widths of the DNN's hidden layers; ``()`` for none.",
    "dropout": "Dropout after every hidden layer.",
    "max_cross_cells": """
        With ``linear``, the linear part also crosses every pair of fields with
        at most this many code combinations (and, on average, at least 4
        training rows per combination): each combination gets a weight of its
        own, as a crossed feature in the wide part of Wide & Deep. Pairs of
        small fields (month x day of month, device type x banner position) are
        where a table of rates beats the low-rank bilinear products; the
        weights start at 0 and learn at ``learning_rate``. 0 turns crosses off.
        """,
    "cross_pairs": """
        Which of the pairs within ``max_cross_cells`` are crossed. ``"all"``:
        every one. ``"auto"``: from 20,000 training rows, only the pairs with
        held-out evidence (on one half of the training rows, a smoothed rate
        of every code combination on top of the smoothed rates of the pair's
        two fields; the pair is kept if, on the other half and back, it lowers
        the loss of those two rates alone, see
        :func:`sk_fibinet.preprocessing.cross_evidence.pair_gains`); below
        20,000 rows the test lacks power and every pair is crossed, as with
        ``"all"``. The crossed pairs are ``net_.module_.cross.pairs``.
        """,
    "cross_triples": """
        ``"auto"``: from 20,000 training rows, up to two crossed triples of
        fields become derived categorical fields, each code combination of the
        three fields a code of its own, embedded and crossed by the network
        like the other fields. Asked are the triples within 2,000 combinations
        (16 training rows each on average) whose pairs have the most held-out
        evidence; kept are those that, on one half of the training rows and
        then the other, lower the held-out loss of a naive model of their
        three fields and three pairs by more than two standard errors (see
        :mod:`sk_fibinet.preprocessing.triple_evidence`). Only with
        ``variant="fibinet"``. ``None``: no derived fields. The triples are
        ``encoder_.crosses_``; explanations report a derived field's share
        under its three columns, a third each.
        """,
    "learning_rate": """
        Learning rate of the optimizer: AdamW for the dense weights, lazy Adam
        (only the rows a batch touches) for the embedding tables.
        """,
    "weight_decay": """
        Decoupled (AdamW) weight decay of the dense weights, the coarse tables
        shared by neighbouring numeric bins included; the code embedding table
        and the linear part (sparse, lazy Adam) are not decayed.
        """,
    "embedding_l2": """
        L2 penalty on the per-code rows (the embedding table and the linear
        weights), applied where a batch touches a row and divided by the
        code's count in the training rows: the mini-batch aware regularisation
        of Zhou et al. (DIN, KDD 2018). Over an epoch every code is pulled
        towards 0 by about the same amount, which outweighs the data for codes
        seen a few times (ids) and hardly matters for frequent ones. 0 turns it
        off.
        """,
    "batch_size": "Training mini-batch size; batches are reshuffled every epoch.",
    "max_epochs": "Maximum number of passes over the training data.",
    "early_stopping": """
        Hold out ``validation_fraction`` of the data and stop when the
        validation loss has not improved for ``n_iter_no_change`` epochs,
        restoring the best epoch. ``"auto"``: on from 1,000 samples (a network
        overfits small data within a few epochs).
        """,
    "n_iter_no_change": "Patience of early stopping, in epochs.",
    "tol": "Minimum decrease of the validation loss that counts as improvement.",
    "device": """
        Torch device, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``. ``"mps"`` is
        refused: PyTorch has no sparse gradients on MPS.
        """,
    "callbacks": "Extra skorch callbacks added to the net.",
    "random_state": """
        Seeds weight initialisation, shuffling, dropout and the validation
        split. Same seed and data give identical probabilities (on CPU).
        """,
    "variant": """
        The network. ``"fibinet"``: FiBiNET (Huang, Zhang & Zhang 2019) as
        described above. ``"fibinet++"``: FiBiNet++ (Zhang, Zheng & Zhang
        2022): embeddings normalised (BatchNorm for categorical fields,
        LayerNorm per numeric field), Bi-Linear+ (one shared ``d x d`` matrix,
        one inner product per pair, compressed by a linear layer) and SENet+
        (bit-wise re-weighting with a skip connection), concatenated into the
        DNN; about 15x fewer non-embedding weights. ``senet_activation``,
        ``bilinear_type``, ``shared_bilinear``, ``linear`` and
        ``max_cross_cells`` apply to ``"fibinet"`` only (FiBiNet++ has no
        linear part).
        """,
    "distributed": """
        Train data-parallel over a ``torch.distributed`` process group: run the
        same script in several processes (``torchrun --nproc-per-node N
        script.py``), each calling ``fit`` with the same data. Each process
        trains on its share of every batch (``batch_size`` is the batch of all
        processes together), gradients are summed over the processes, and all
        end with the same model. Without an initialised process group, ``fit``
        starts one from torchrun's environment variables (gloo on CPUs, NCCL
        on CUDA, where ``device="cuda"`` means ``cuda:LOCAL_RANK``). Only
        process 0 prints and writes checkpoints. See the "Big data" chapter.
        """,
    "checkpoint_dir": """
        Directory where ``fit`` saves its training state after every epoch (one
        file per fit, named after a fingerprint of the parameters and the
        data). A fit killed part-way resumes from it when run again with the
        same data and parameters; a finished fit is restored without training.
        Other data or parameters start a file of their own. A fit on a
        :class:`ParquetSource` also saves within epochs (its
        ``checkpoint_every_n_batches``).
        """,
    "target_stats": """
        Add cross-fitted target statistics of high-cardinality categorical
        columns and of chosen pairs of them as numeric fields (what CatBoost
        learns from IDs). ``"all"`` picks DataFrame columns with more than 50
        distinct values whose values mostly repeat, and pairs of them that
        refine both columns (at most 12; see :doc:`/encoding`); ``"auto"``
        those of them with at most 50 training rows per value, on tables of at
        least 50,000 training rows (where each ID has too few rows for its
        embedding to learn its rate, and enough rows in all for the
        statistics not to be noise) and whose out-of-fold statistic predicts
        the target on held-out folds (an ID unrelated to the target is left
        out; see :doc:`/encoding`). The training
        rows get out-of-fold statistics (10 folds, by row or by the ``groups``
        given to ``fit``), the early-stopping rows statistics of the training
        rows only; once fitted, the statistics take in every row, for
        prediction. ``partial_fit`` chunks after the first get the statistics
        of the chunks before them (the first chunk chooses the columns: under
        ``"auto"`` a first chunk of fewer than 50,000 rows adds none). A fit
        on a :class:`ParquetSource` computes the same statistics with one or
        two more passes over the chosen columns. None adds none.
        """,
    "precision": """
        Precision of the matmuls of the first DNN layer, which reads every
        pair product of both bilinear branches (19 of the 20.4 MFLOP per row
        of a 39-field forward pass). ``"bfloat16"`` rounds the layer's weight
        and the products to bfloat16 for those matmuls; their results, every
        parameter and every other layer stay float32. ``"auto"`` takes
        bfloat16 on a CPU with native bfloat16 (AVX-512 BF16 or AMX, see
        ``/proc/cpuinfo``), float32 elsewhere (GPUs included): the same seed
        then gives other (equally good) models on hosts with and without it.
        ``variant="fibinet++"`` and the ONNX graph (``to_onnx``) are float32
        always. See the performance chapter for the speed and the scores.
        """,
    # -------------------------------------------------------------- attributes
    "n_features_in_": "Number of input columns.",
    "feature_names_in_": """
        Column names, when ``X`` was a DataFrame with string column names.
        """,
    "n_iter_": "Number of epochs run.",
    "encoder_": "Fitted column-to-field encoder.",
    "net_": """
        Fitted skorch net; ``net_.module_`` is the torch module and
        ``net_.history`` the per-epoch history.
        """,
    # ------------------------------------------------------------- partial_fit
    "chunk_X": """
        A chunk of training data with the columns of the first call. On
        later calls an empty chunk changes nothing.
        """,
    "chunk_sample_weight": """
        Per-sample weights of the loss, used as given: not normalised per
        chunk, so chunks keep their relative weight.
        """,
}

#: Shared text by name, dedented; :func:`fill_doc` indents it in place.
SHARED = {name: textwrap.dedent(text).strip("\n") for name, text in _TEXTS.items()}


def fill_doc(obj):
    """Replace the ``$name`` placeholders of a docstring by ``SHARED[name]``.

    Parameters
    ----------
    obj : class or function
        Whose ``__doc__`` to fill, in place. A placeholder starts a line after
        its indentation; every line of the shared text gets that indentation.

    Returns
    -------
    obj : class or function
        The same object, so ``fill_doc`` works as a decorator.

    Raises
    ------
    KeyError
        If a placeholder names no shared text (at import, not in ``help()``).
    """

    def fill(match: re.Match) -> str:
        indent, name = match.groups()
        return textwrap.indent(SHARED[name], indent)

    obj.__doc__ = _PLACEHOLDER.sub(fill, obj.__doc__)
    return obj
