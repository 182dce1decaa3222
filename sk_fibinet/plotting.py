"""Plots of a fitted FiBiNET estimator (matplotlib, an optional dependency).

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
    model : FiBiNETClassifier or FiBiNETRegressor
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
    importances = model.feature_importances_  # (n_features,): per input column
    names = model.encoder_.column_names_[: len(importances)]
    values = pd.Series(importances, index=names).sort_values()
    values = values.iloc[-max_fields:]
    ax = _axes(ax, (6, 0.3 * len(values) + 1.2))
    ax.barh(values.index, values.to_numpy(), color="#3b75af")
    ax.set_xlabel("field ablation importance (share of the rise in loss)")
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


def _colour_values(column: pd.Series) -> np.ndarray:
    """Per row, a value in [0, 1] to colour by (NaN where missing): the rank of
    the value for numeric and bool columns, the share of rows with the same
    category for the others (rescaled to the column's range)."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = pd.to_numeric(column, errors="coerce").astype(float)
        return values.rank(pct=True).to_numpy()  # (n,), NaN stays NaN
    share = column.map(column.value_counts(normalize=True, dropna=False))
    share = share.astype(float).to_numpy()  # (n,)
    low, high = np.nanmin(share), np.nanmax(share)
    if high > low:
        return (share - low) / (high - low)
    return np.full(len(share), 0.5)


def plot_contributions(
    contributions,
    X=None,
    *,
    ax=None,
    max_columns=20,
    cmap="coolwarm",
    xlabel="contribution",
    random_state=0,
):
    """Summary of per-row contributions: one row per column, one dot per sample.

    Columns are sorted by their mean absolute contribution, largest on top;
    each dot is one row of ``contributions``, placed at its contribution and
    spread vertically by how many rows lie near it (a beeswarm). With ``X``,
    dots are coloured by the column's value: numeric and bool columns by the
    rank of the value (low blue, high red), other columns by how frequent the
    row's category is in ``X``; missing values are grey.

    Parameters
    ----------
    contributions : DataFrame of shape (n_samples, n_features)
        Output of ``explain(X)``.
    X : DataFrame of shape (n_samples, n_features), default=None
        The rows that were explained, for the colours; None draws every dot in
        one colour.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    max_columns : int, default=20
        Show at most this many columns (those with the largest mean absolute
        contribution).
    cmap : str, default="coolwarm"
        Matplotlib colormap for the values.
    xlabel : str, default="contribution"
        Label of the x axis, e.g. ``"contribution to the logit"``.
    random_state : int, default=0
        Seeds the vertical jitter of the dots.

    Returns
    -------
    ax : matplotlib Axes
    """
    if not isinstance(contributions, pd.DataFrame):
        raise ValueError(
            "contributions must be the DataFrame returned by explain(X), got "
            f"{type(contributions).__name__}."
        )
    if X is not None:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X), columns=contributions.columns)
        if X.shape[0] != contributions.shape[0] or not set(
            contributions.columns
        ) <= set(map(str, X.columns)):
            raise ValueError(
                "X must hold the rows and columns that were explained: "
                f"contributions has shape {contributions.shape}, X {X.shape}."
            )
        X = X.set_axis(list(map(str, X.columns)), axis=1)
    order = contributions.abs().mean().sort_values(ascending=False)
    names = list(order.index[:max_columns])[::-1]  # largest on top
    ax = _axes(ax, (7, 0.38 * len(names) + 1.4))
    rng = np.random.default_rng(random_state)
    colormap = _colormap(cmap)
    scatter = None
    for row, name in enumerate(names):
        x = contributions[name].to_numpy(dtype=float)  # (n,)
        # spread: proportional to the density of dots around each x
        counts, edges = np.histogram(x, bins=40)
        where = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 39)
        density = counts[where] / max(counts.max(), 1)  # (n,) in (0, 1]
        y = row + rng.uniform(-0.4, 0.4, size=x.size) * np.sqrt(density)
        if X is None:
            ax.scatter(x, y, s=8, color="#3b75af", alpha=0.6, linewidths=0)
            continue
        c = _colour_values(X[name])  # (n,)
        missing = np.isnan(c)
        if missing.any():
            ax.scatter(
                x[missing], y[missing], s=8, color="#9a9a9a", alpha=0.6, linewidths=0
            )
        scatter = ax.scatter(
            x[~missing],
            y[~missing],
            c=c[~missing],
            cmap=colormap,
            vmin=0.0,
            vmax=1.0,
            s=8,
            alpha=0.8,
            linewidths=0,
        )
    ax.axvline(0.0, color="grey", linewidth=0.8, zorder=0)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title("Contributions per row, columns by mean |contribution|")
    if scatter is not None:
        bar = ax.figure.colorbar(scatter, ax=ax, pad=0.01, aspect=30, ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("value (numeric) or category frequency")
    return ax


def _colormap(cmap):
    import matplotlib

    return matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap


def plot_waterfall(
    contributions,
    base_value,
    *,
    ax=None,
    max_columns=10,
    values=None,
    xlabel="model output",
):
    """One row's contributions as a waterfall from the base value to the output.

    The bars start at ``base_value`` (the output with every column at its
    reference, ``explain_base_value_``) at the bottom and add one column's
    contribution each, smallest first, up to the row's output at the top
    (positive in red, negative in blue). Columns beyond ``max_columns`` are
    summed into one bar.

    Parameters
    ----------
    contributions : Series or one-row DataFrame
        One row of ``explain(X)``.
    base_value : float
        ``explain_base_value_`` (for a multiclass classifier, the entry of the
        explained class).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    max_columns : int, default=10
        Show at most this many columns (the largest contributions).
    values : Series or one-row DataFrame, default=None
        The row of ``X`` that was explained; its values are shown next to the
        column names.
    xlabel : str, default="model output"
        Label of the x axis, e.g. ``"logit"``.

    Returns
    -------
    ax : matplotlib Axes
    """
    if isinstance(contributions, pd.DataFrame):
        if contributions.shape[0] != 1:
            raise ValueError(
                "plot_waterfall draws one row: pass contributions.iloc[i], got "
                f"{contributions.shape[0]} rows."
            )
        contributions = contributions.iloc[0]
    if isinstance(values, pd.DataFrame):
        values = values.iloc[0]
    base_value = float(np.asarray(base_value).reshape(-1)[0])
    c = pd.Series(contributions, dtype=float)
    order = c.abs().sort_values(ascending=False).index
    shown = list(order[:max_columns])
    steps = [(_waterfall_label(name, values), c[name]) for name in shown]
    rest = list(order[max_columns:])
    if rest:
        steps.append((f"{len(rest)} other columns", float(c[rest].sum())))
    steps = steps[::-1]  # smallest at the bottom, next to the base value
    ax = _axes(ax, (7, 0.42 * len(steps) + 1.6))
    ends = base_value + np.cumsum([delta for _, delta in steps])  # (n_steps,)
    starts = np.concatenate([[base_value], ends[:-1]])  # (n_steps,)
    low = min(base_value, ends.min())
    span = max(base_value, ends.max()) - low or 1.0
    for row, ((_, delta), start) in enumerate(zip(steps, starts, strict=True)):
        colour = "#d1495b" if delta >= 0 else "#3b75af"
        ax.barh(row, delta, left=start, color=colour, height=0.7)
        # the value just outside the bar's far end, in the direction it moves
        ax.text(
            start + delta + (0.01 if delta >= 0 else -0.01) * span,
            row,
            f"{delta:+.3g}",
            va="center",
            ha="left" if delta >= 0 else "right",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
        )
    output = float(ends[-1])
    ax.axvline(base_value, color="grey", linestyle=":", linewidth=1, label="base value")
    ax.axvline(output, color="black", linestyle="--", linewidth=1, label="output")
    ax.set_yticks(range(len(steps)), [label for label, _ in steps])
    ax.set_ylim(-0.7, len(steps) - 0.3)
    ax.set_xlim(low - 0.18 * span, low + 1.18 * span)  # room for the values
    ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(f"base value {base_value:.3g}  ->  output {output:.3g}")
    return ax


def _waterfall_label(name, values) -> str:
    if values is None or name not in values.index:
        return str(name)
    value = values[name]
    if isinstance(value, float | np.floating):
        value = f"{value:.4g}"
    text = f"{name} = {value}"
    return text if len(text) <= 40 else text[:39] + "..."
