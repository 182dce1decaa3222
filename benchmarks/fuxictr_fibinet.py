"""FuxiCTR 2.3.10's FiBiNET with the BARS Frappe configuration, as a peer.

Run with the interpreter of the environment made by ``setup_fuxictr_venv.sh``;
``benchmarks/quality.py`` does so for its row "FuxiCTR FiBiNET (BARS Frappe
config)"::

    benchmarks/.venv-fuxictr/bin/python benchmarks/fuxictr_fibinet.py fit \\
        --workdir DIR --seed 0 --threads 1
    benchmarks/.venv-fuxictr/bin/python benchmarks/fuxictr_fibinet.py predict \\
        --workdir DIR --threads 1

``DIR`` holds what FuxiCTR's npz route reads (as in its repository's
``demo/example3_DeepFM_with_npz_input.py``): ``feature_map.json`` and
``train.npz`` / ``valid.npz`` (for ``fit``) or ``test.npz`` (for ``predict``),
one array per feature plus ``label``. FuxiCTR's own ``FeatureMap``,
``RankDataLoader`` (npz format, no Ray) and ``BaseModel.fit`` do the rest:
Adam at 1e-3, AUC on the validation rows after every epoch, the best epoch's
weights kept, patience 2, the learning rate divided by 10 on each plateau.
``predict`` writes ``DIR/proba.npy``. Each command prints one JSON line on
stdout; FuxiCTR's log goes to stderr. ``--params '{"embedding_regularizer": 0}'``
(the same for both commands) changes one entry of the configuration, for
diagnostics; the peer row uses none.

The FiBiNET class lives in FuxiCTR's model zoo, not in its wheel, so
:class:`FiBiNET` below composes the layers the wheel ships the way the model
zoo does: ``FeatureEmbedding`` -> ``SqueezeExcitation``; one
``BilinearInteractionV2`` on the embeddings and one on the SENET output;
their concatenation flattened into an ``MLP_Block``; plus a first-order
``LogisticRegression``; sigmoid output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

# BARS, FiBiNET_frappe_x1 (reczoo/BARS, ranking/ctr/FiBiNET/FiBiNET_frappe_x1,
# the tuner's config 001): the published Frappe configuration.
BARS_FRAPPE = {
    "batch_norm": True,
    "batch_size": 4096,
    "bilinear_type": "field_all",
    "embedding_dim": 10,
    "embedding_regularizer": 0.05,
    "epochs": 100,
    "hidden_activations": "relu",
    "hidden_units": [400, 400, 400],
    "learning_rate": 1e-3,
    "loss": "binary_crossentropy",
    "metrics": ["AUC", "logloss"],
    "monitor": "AUC",
    "monitor_mode": "max",
    "net_dropout": 0.3,
    "net_regularizer": 0,
    "optimizer": "adam",
    "early_stop_patience": 2,
    "reduction_ratio": 1,
    "save_best_only": True,
    "shuffle": True,
    "task": "binary_classification",
}


def _model_class():
    """Build the FiBiNET class once FuxiCTR is importable."""
    import torch
    from fuxictr.pytorch.layers import (
        BilinearInteractionV2,
        FeatureEmbedding,
        LogisticRegression,
        MLP_Block,
        SqueezeExcitation,
    )
    from fuxictr.pytorch.models import BaseModel

    class FiBiNET(BaseModel):
        """FiBiNET composed from FuxiCTR's layers, trained by its ``BaseModel``.

        Parameters
        ----------
        feature_map : fuxictr.features.FeatureMap
            The fields (categorical or numeric) and the label.
        embedding_dim, hidden_units, hidden_activations, reduction_ratio, \
bilinear_type, net_dropout, batch_norm, learning_rate
            As FuxiCTR's model-zoo FiBiNET.
        **kwargs
            Passed on to ``BaseModel`` (regularizers, monitor, patience,
            ``optimizer``, ``loss``, ``model_root``, ``metrics``, ``verbose``).
        """

        def __init__(
            self,
            feature_map,
            *,
            model_id="FiBiNET",
            gpu=-1,
            learning_rate=1e-3,
            embedding_dim=10,
            hidden_units=(),
            hidden_activations="ReLU",
            excitation_activation="ReLU",
            reduction_ratio=3,
            bilinear_type="field_interaction",
            net_dropout=0.0,
            batch_norm=False,
            **kwargs,
        ):
            super().__init__(feature_map, model_id=model_id, gpu=gpu, **kwargs)
            n_fields = feature_map.num_fields
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
            self.senet_layer = SqueezeExcitation(
                n_fields, reduction_ratio, excitation_activation
            )
            self.bilinear_p = BilinearInteractionV2(
                n_fields, embedding_dim, bilinear_type
            )
            self.bilinear_q = BilinearInteractionV2(
                n_fields, embedding_dim, bilinear_type
            )
            self.lr_layer = LogisticRegression(feature_map, use_bias=False)
            self.dnn = MLP_Block(
                input_dim=n_fields * (n_fields - 1) * embedding_dim,
                output_dim=1,
                hidden_units=list(hidden_units),
                hidden_activations=hidden_activations,
                output_activation=None,
                dropout_rates=net_dropout,
                batch_norm=batch_norm,
            )
            self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            """Return ``{"y_pred": probabilities of shape (batch, 1)}``."""
            X = self.get_inputs(inputs)
            e = self.embedding_layer(X)  # (batch, n_fields, d)
            v = self.senet_layer(e)  # (batch, n_fields, d)
            p = self.bilinear_p(e)  # (batch, n_pairs, d)
            q = self.bilinear_q(v)  # (batch, n_pairs, d)
            h = torch.flatten(torch.cat([p, q], dim=1), start_dim=1)
            # h: (batch, 2 * n_pairs * d)
            logit = self.lr_layer(X) + self.dnn(h)  # (batch, 1)
            return {"y_pred": self.output_activation(logit)}  # (batch, 1)

    return FiBiNET


def __getattr__(name):
    # ``from fuxictr_fibinet import FiBiNET`` (the setup script's import check).
    if name == "FiBiNET":
        return _model_class()
    raise AttributeError(name)


def _setup(workdir: Path, threads: int, seed: int, overrides: dict):
    """Seed, limit threads, log to stderr; return the params and the feature map."""
    import torch
    from fuxictr.features import FeatureMap
    from fuxictr.pytorch.torch_utils import seed_everything

    torch.set_num_threads(threads)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True)
    seed_everything(seed=seed)
    unknown = set(overrides) - set(BARS_FRAPPE)
    if unknown:
        raise ValueError(f"--params: unknown keys {sorted(unknown)}")
    params = dict(
        BARS_FRAPPE,
        **overrides,
        dataset_id="quality",
        model_root=str(workdir / "model"),
        verbose=0,
        seed=seed,
    )
    os.makedirs(Path(params["model_root"]) / params["dataset_id"], exist_ok=True)
    feature_map = FeatureMap(params["dataset_id"], str(workdir))
    feature_map.load(str(workdir / "feature_map.json"), params)
    return params, feature_map


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit(workdir: Path, seed: int, threads: int, overrides: dict) -> dict:
    """Train on ``train.npz``, early-stop on ``valid.npz``; keep the best weights."""
    from fuxictr.pytorch.dataloaders import RankDataLoader

    params, feature_map = _setup(workdir, threads, seed, overrides)
    start = time.perf_counter()
    train_gen, valid_gen = RankDataLoader(
        feature_map,
        stage="train",
        train_data=str(workdir / "train.npz"),
        valid_data=str(workdir / "valid.npz"),
        batch_size=params["batch_size"],
        data_format="npz",
        shuffle=params["shuffle"],
        num_workers=0,  # the batches are cheap; workers would take cores
    )
    model = _model_class()(feature_map, **params)
    model.fit(train_gen, validation_data=valid_gen, epochs=params["epochs"])
    seconds = time.perf_counter() - start
    return {
        "train_seconds": seconds,
        "epochs_run": model._epoch_index + 1,
        "best_valid_auc": float(model._best_metric),
        "n_params": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": _peak_rss_mb(),
    }


def predict(workdir: Path, threads: int, overrides: dict) -> dict:
    """Write the best model's probabilities on ``test.npz`` to ``proba.npy``."""
    from fuxictr.pytorch.dataloaders import RankDataLoader

    params, feature_map = _setup(workdir, threads, 0, overrides)
    test_gen = RankDataLoader(
        feature_map,
        stage="test",
        test_data=str(workdir / "test.npz"),
        batch_size=params["batch_size"],
        data_format="npz",
        shuffle=False,
        num_workers=0,
    )
    model = _model_class()(feature_map, **params)
    model.load_weights(model.checkpoint)
    start = time.perf_counter()
    proba = model.predict(test_gen)  # (n_test,)
    seconds = time.perf_counter() - start
    if not np.isfinite(proba).all():
        raise RuntimeError("FuxiCTR FiBiNET predicted non-finite probabilities")
    np.save(workdir / "proba.npy", proba)
    return {"predict_seconds": seconds, "n_rows": int(len(proba))}


def main(argv=None):
    """Run ``fit`` or ``predict`` and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("fit", "predict"))
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        help="JSON overriding BARS_FRAPPE entries (a diagnostic, not the peer row)",
    )
    args = parser.parse_args(argv)
    import fuxictr
    import torch

    if args.command == "fit":
        result = fit(args.workdir, args.seed, args.threads, args.params)
    else:
        result = predict(args.workdir, args.threads, args.params)
    result.update(
        impl=f"fuxictr {fuxictr.__version__}",
        torch=torch.__version__,
        threads=args.threads,
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
