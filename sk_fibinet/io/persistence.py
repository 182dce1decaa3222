"""Save and load a fitted FiBiNETClassifier or FiBiNETRegressor without pickle.

The file is a single ``torch.save`` archive of a dict that holds only tensors
and plain Python values (str, int, float, bool, None, lists, tuples, dicts).
:func:`load_model` reads it with ``torch.load(..., weights_only=True)``, which
refuses to build any other object, so loading a file never runs code from it.
That holds on torch >= 2.10 only: older releases have known escapes from the
weights-only unpickler, and :func:`load_model` refuses to run on them.

This module assembles the file from a fitted estimator (:func:`save_model`)
and rebuilds the estimator from one (:func:`load_model`: the format name and
version checked, the weights fitted to the network they were saved from). The
format itself, each part as plain values and back and the guarded read, is
``model_file.py``.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from .._serialization import _check_torch_safe, _history_to_json
from .._version import __version__
from ..estimators.base import BaseFiBiNET
from ..estimators.classifier import FiBiNETClassifier
from ..estimators.regressor import FiBiNETRegressor
from ..estimators.validation import _check_device
from ..training.engine import _trained_params
from .model_file import (
    _READABLE_VERSIONS,
    FORMAT_VERSION,
    _array_from_plain,
    _array_to_plain,
    _encoder_from_plain,
    _encoder_to_plain,
    _float_array,
    _network_to_plain,
    _params_to_plain,
    _read,
    _target_stats_from_plain,
    _target_stats_to_plain,
)

FORMAT_NAME = "sk_fibinet.FiBiNETClassifier"
# The format name records the estimator class a file holds; both share one layout.
_FORMATS = {
    FORMAT_NAME: FiBiNETClassifier,
    "sk_fibinet.FiBiNETRegressor": FiBiNETRegressor,
}


def save_model(model: BaseFiBiNET, path) -> None:
    """Save a fitted FiBiNET estimator to a file that loads safely.

    Parameters
    ----------
    model : FiBiNETClassifier or FiBiNETRegressor
        A fitted estimator whose ``callbacks`` parameter is None.
    path : str, os.PathLike or binary file object
        Where to write the file (it is overwritten if it exists).

    Returns
    -------
    None

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.
    TypeError
        If ``model`` is not a :class:`FiBiNETClassifier` or
        :class:`FiBiNETRegressor`.
    ValueError
        If ``callbacks`` is not None, or a parameter, a category of a
        categorical column or a class label is not a str, int, float or bool
        (the message names the parameter or the column).

    See Also
    --------
    load_model : Read the file back.

    Notes
    -----
    The file is one ``torch.save`` archive holding only tensors and plain Python
    values: the estimator class, the hyper-parameters, the encoder's vocabularies
    and bin edges, the target statistics of ``target_stats="auto"`` (their
    vocabularies, per-value and per-fold sums and fold totals, enough for
    ``predict`` and for a later ``partial_fit`` to keep updating them), the
    classes (classifier) or the target scaling (regressor), the training
    history (as JSON) and the network weights. The optimizer state is not
    stored, so a loaded model predicts exactly like the saved one but does not
    continue training where it stopped.

    Unlike pickle or joblib, which can execute arbitrary code when they load a
    file (never unpickle a model from an untrusted source), this format is read
    with ``torch.load(weights_only=True)``, which cannot (on torch >= 2.10,
    which :func:`load_model` requires).

    A ``random_state`` given as a ``RandomState`` instance is stored as None.
    """
    format_name = next(
        (name for name, cls in _FORMATS.items() if isinstance(model, cls)), None
    )
    if format_name is None:
        raise TypeError(
            "save_model expects a FiBiNETClassifier or a FiBiNETRegressor, got "
            f"{type(model).__name__}."
        )
    check_is_fitted(model)

    params = _params_to_plain(model)
    state_dict = {
        key: value.detach().to("cpu").clone()
        for key, value in model.net_.module_.state_dict().items()
    }
    payload = {
        "format": format_name,
        "format_version": FORMAT_VERSION,
        "sk_fibinet_version": str(__version__),
        "params": params,
        "encoder": _encoder_to_plain(model.encoder_),
        "n_features_in": int(model.n_features_in_),
        "feature_names_in": (
            [str(c) for c in model.feature_names_in_]
            if hasattr(model, "feature_names_in_")
            else None
        ),
        "n_iter": int(model.n_iter_),
        "feature_importances": torch.from_numpy(
            np.array(model.feature_importances_, dtype=np.float64, copy=True)
        ),
        "senet_weights": torch.from_numpy(
            np.array(model.senet_weights_, dtype=np.float64, copy=True)
        ),
        "explain_base_value": torch.from_numpy(
            np.atleast_1d(np.array(model.explain_base_value_, dtype=np.float64))
        ),
        "code_counts": model._code_counts.to("cpu", torch.float64).clone(),
        "network": _network_to_plain(model),
        "history": _history_to_json(model.net_.history),
        "state_dict": state_dict,
        "target_stats": _target_stats_to_plain(getattr(model, "target_stats_", None)),
    }
    if isinstance(model, FiBiNETClassifier):
        payload["classes"] = _array_to_plain(np.asarray(model.classes_), "classes_")
        payload["temperature"] = float(model.temperature_)
    else:
        payload["target_scaling"] = {
            "offset": float(model.target_offset_),
            "scale": float(model.target_scale_),
        }
    torch.save(payload, path)


def load_model(path, *, device="cpu") -> BaseFiBiNET:
    """Load a classifier or regressor written by :func:`save_model`.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        The file to read.
    device : str or torch.device, default="cpu"
        Torch device to put the network on (e.g. ``"cuda"``); the loaded
        model's ``device`` parameter is set to it.

    Returns
    -------
    model : FiBiNETClassifier or FiBiNETRegressor
        The fitted estimator, of the class that was saved; its
        ``predict_proba`` (classifier) or ``predict`` (regressor) gives the same
        values as the saved model's (bit for bit on the same device).

    Raises
    ------
    ValueError
        If the file is not a sk_fibinet model file (for instance a pickle or
        joblib file, or damaged data), if its format version is not one this
        version of sk_fibinet reads, or if ``device`` is not available.
    RuntimeError
        If torch is older than 2.10, whose weights-only loader a crafted file
        can escape (CVE-2025-32434, CVE-2026-24747).
    OSError
        If the file cannot be opened.

    See Also
    --------
    save_model : Write the file.

    Notes
    -----
    The file is read with ``torch.load(weights_only=True)``, which only builds
    tensors and plain Python values, so loading a file cannot execute code.
    That holds on torch >= 2.10 (the package's floor); on an older torch this
    function refuses to read anything. Loading a model with pickle or joblib
    can execute arbitrary code: never unpickle a model from an untrusted source.

    The global random state of torch (CPU and every CUDA device) is left
    untouched. The loaded model has
    ``callbacks=None`` and no optimizer state.
    """
    _check_torch_safe()
    dev = _check_device(device)
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get("format") not in _FORMATS:
        raise ValueError(
            "The file is not a sk_fibinet model file written by save_model (its "
            f"format name is not one of {sorted(_FORMATS)})."
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(
            f"The sk_fibinet model file has an invalid format version {version!r}."
        )
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"The sk_fibinet model file has format version {version} (written by "
            f"sk_fibinet {payload.get('sk_fibinet_version', 'unknown')}), but this "
            f"sk_fibinet ({__version__}) reads only format versions "
            f"{', '.join(map(str, _READABLE_VERSIONS))}; load it with a matching "
            "sk_fibinet version."
        )
    try:
        return _rebuild(payload, device, dev)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"The sk_fibinet model file is damaged or incomplete ({type(exc).__name__}:"
            f" {exc})."
        ) from exc


def _rebuild(payload: dict, device, dev: torch.device) -> BaseFiBiNET:
    params = dict(payload["params"])
    params["device"] = device
    model = _FORMATS[payload["format"]](**params)

    encoder = _encoder_from_plain(payload["encoder"])
    network = payload["network"]
    net = model._build_net(
        encoder=encoder,
        hidden=tuple(int(h) for h in network["hidden"]),
        n_outputs=int(network["n_outputs"]),
        # files written before crossed pairs existed have none
        cross_cells=int(network.get("max_cross_cells", 0)),
        # files written before cross_pairs existed cross every pair
        cross_pairs=network.get("cross_pairs"),
        device=dev,
        train_split=None,
        callbacks=[],
        seed=int(network["shuffle_seed"]),
        # the row penalty of embedding_l2 for a later partial_fit
        code_counts=payload["code_counts"] if "code_counts" in payload else None,
    )
    # initialize() draws its initial weights from the net's own generator
    net.initialize()
    try:
        state = dict(payload["state_dict"])
        if payload["format_version"] == 1:  # derived buffers were stored then
            stored = set(net.module_.state_dict())
            state = {k: v for k, v in state.items() if k in stored}
        net.module_.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"The sk_fibinet model file holds weights that do not fit its own "
            f"parameters: {exc}"
        ) from exc
    net.history = History(json.loads(payload["history"]))

    model.encoder_ = encoder
    model.net_ = net
    model.n_features_in_ = int(payload["n_features_in"])
    if payload.get("feature_names_in") is not None:
        names = np.empty(len(payload["feature_names_in"]), dtype=object)
        names[:] = payload["feature_names_in"]
        model.feature_names_in_ = names
    model.n_iter_ = int(payload["n_iter"])
    model.feature_importances_ = _float_array(payload["feature_importances"])
    if "code_counts" in payload:  # files from before explanations lack these
        model.senet_weights_ = _float_array(payload["senet_weights"])
        base = _float_array(payload["explain_base_value"])
        model.explain_base_value_ = float(base[0]) if base.size == 1 else base
        model._code_counts = payload["code_counts"].to(torch.float64)
    # files before format 4 hold no target statistics
    model.target_stats_ = _target_stats_from_plain(payload.get("target_stats"))
    model._trained_params = _trained_params(model)  # for a later partial_fit
    if isinstance(model, FiBiNETClassifier):
        model.classes_ = _array_from_plain(payload["classes"])
        model.temperature_ = float(payload["temperature"])
    else:
        model.target_offset_ = float(payload["target_scaling"]["offset"])
        model.target_scale_ = float(payload["target_scaling"]["scale"])
    return model
