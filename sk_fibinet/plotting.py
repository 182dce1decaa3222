"""Plots of a fitted FiBiNETClassifier (matplotlib, an optional dependency).

Install it with ``pip install "sk_fibinet[plot]"``. Every function draws on
``ax`` (a new figure when None) and returns the matplotlib Axes, as
scikit-learn's display objects do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted


def _axes(ax, figsize):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'sk_fibinet[plot]'."
        ) from exc
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_field_importances(model, *, ax=None, max_fields=30):
    """Horizontal bars of ``model.feature_importances_``, largest on top.

    Parameters
    ----------
    model : FiBiNETClassifier
        A fitted model.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    max_fields : int, default=30
        Show at most this many fields (the largest).

    Returns
    -------
    ax : matplotlib Axes
    """
    check_is_fitted(model)
    names = model.encoder_.column_names_
    values = pd.Series(model.feature_importances_, index=names).sort_values()
    values = values.iloc[-max_fields:]
    ax = _axes(ax, (6, 0.3 * len(values) + 1.2))
    ax.barh(values.index, values.to_numpy(), color="#3b75af")
    ax.set_xlabel("SENET field importance (mean excitation weight, sums to 1)")
    ax.set_title("Field importance")
    ax.margins(y=0.01)
    return ax


def plot_interactions(strengths, *, ax=None, cmap="viridis", annotate=None):
    """Heatmap of a square interaction-strength table.

    Parameters
    ----------
    strengths : DataFrame of shape (n_fields, n_fields)
        Output of ``FiBiNETClassifier.interaction_strengths(X)``.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    cmap : str, default="viridis"
        Matplotlib colormap.
    annotate : bool or None, default=None
        Write the values in the cells; None annotates up to 12 fields.

    Returns
    -------
    ax : matplotlib Axes
    """
    if (
        not isinstance(strengths, pd.DataFrame)
        or strengths.shape[0] != strengths.shape[1]
    ):
        raise ValueError(
            "strengths must be the square DataFrame returned by "
            "interaction_strengths(X)."
        )
    n = strengths.shape[0]
    ax = _axes(ax, (0.45 * n + 2.5, 0.45 * n + 1.8))
    values = strengths.to_numpy(dtype=float)
    image = ax.imshow(values, cmap=cmap)
    ax.set_xticks(range(n), strengths.columns, rotation=90)
    ax.set_yticks(range(n), strengths.index)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="mean contribution norm")
    if annotate is None:
        annotate = n <= 12
    if annotate:
        top = np.nanmax(values) if values.size else 0.0
        for i in range(n):
            for j in range(n):
                if i != j:
                    color = "black" if values[i, j] > 0.6 * top else "white"
                    ax.text(
                        j,
                        i,
                        f"{values[i, j]:.2g}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=color,
                    )
    ax.set_title("Field-pair interaction strength")
    return ax


def _kept_epoch(model):
    """The epoch whose weights early stopping restored (1-based), or None.

    Read from the net's ``EarlyStopping`` callback when it is there; otherwise
    (a model from ``load_model``) replayed from the history with the same rule:
    an epoch counts as better only if its validation loss (after temperature
    scaling, when that was recorded) is below the best so far by more than
    ``tol``. This is not always the epoch of lowest loss.
    """
    callbacks = dict(getattr(model.net_, "callbacks_", []))
    stopper = callbacks.get("early_stopping")
    if stopper is not None and getattr(stopper, "best_epoch_", None) is not None:
        return int(stopper.best_epoch_)
    history = model.net_.history
    if not len(history) or "valid_loss" not in history[-1]:
        return None
    # the loss early stopping watched: after temperature scaling when recorded
    key = (
        "valid_loss_calibrated"
        if "valid_loss_calibrated" in history[-1]
        else "valid_loss"
    )
    best, threshold = None, np.inf
    for epoch, loss in zip(history[:, "epoch"], history[:, key], strict=True):
        if loss < threshold:
            best, threshold = int(epoch), loss - model.tol
    return best


_LOSS_LABELS = {
    "log_loss": "log loss",
    "squared_error": "squared error, standardised target",
    "absolute_error": "absolute error, standardised target",
    "poisson": "Poisson negative log-likelihood",
}


def plot_learning_curves(model, *, ax=None):
    """Training and validation loss per epoch, from the skorch history.

    Parameters
    ----------
    model : FiBiNETClassifier or FiBiNETRegressor
        A fitted model; the y axis names its loss.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib Axes
        With a second y axis for the validation ROC AUC when it was recorded,
        and a vertical line at the epoch whose weights early stopping kept
        (the last one that improved the validation loss by more than ``tol``,
        which need not be the epoch of lowest loss). With temperature
        calibration the temperature-scaled validation loss, the one early
        stopping watches, is drawn too.
    """
    check_is_fitted(model)
    history = model.net_.history
    epochs = np.arange(1, len(history) + 1)
    ax = _axes(ax, (6, 4.5))
    ax.plot(epochs, history[:, "train_loss"], marker="o", label="training loss")
    if "valid_loss" in history[-1]:
        valid = np.asarray(history[:, "valid_loss"], dtype=float)
        ax.plot(epochs, valid, marker="o", label="validation loss")
        if "valid_loss_calibrated" in history[-1]:
            calibrated = np.asarray(history[:, "valid_loss_calibrated"], dtype=float)
            ax.plot(
                epochs,
                calibrated,
                marker=".",
                linestyle="-.",
                label="validation loss, calibrated (early stopping)",
            )
        kept = _kept_epoch(model)
        if kept is not None:
            ax.axvline(kept, color="grey", linestyle=":", label="epoch kept")
    if "valid_auc" in history[-1]:
        auc_ax = ax.twinx()
        auc_ax.plot(
            epochs,
            history[:, "valid_auc"],
            color="#2a9d55",
            marker="s",
            linestyle="--",
            label="validation ROC AUC",
        )
        auc_ax.set_ylabel("validation ROC AUC")
        lines = ax.get_lines() + auc_ax.get_lines()
    else:
        lines = ax.get_lines()
    # below the axes, so that no curve on either y axis hides it
    ax.legend(
        lines,
        [line.get_label() for line in lines],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=2,
        frameon=False,
    )
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    task = getattr(model.net_, "task", "log_loss")
    ax.set_ylabel(_LOSS_LABELS.get(task, "loss") + " (weighted)")
    ax.set_title("Learning curves")
    return ax
