"""AdamW for dense parameters, lazy Adam for embedding tables (torch only)."""

from __future__ import annotations

import math

import torch


class SparseDenseAdamW(torch.optim.Optimizer):
    """AdamW on dense gradients, lazy (row-wise) Adam on sparse gradients.

    Embedding tables with ``sparse=True`` produce gradients for the rows a batch
    touched only. Those rows and their moments alone are updated, with
    ``torch.optim.SparseAdam``'s arithmetic and state (its row merging replaced
    by a linear-time one, see ``_lazy_adam``), instead of zeroing, scattering
    into and stepping over the whole table every step; every other parameter
    goes to ``torch.optim.AdamW`` (fused where the device supports it).
    Parameter groups flagged ``{"sparse": True}`` go to the lazy optimizer,
    which applies no weight decay.
    A sparse group may instead set ``row_l2`` (float) and ``row_scale`` (a
    ``(rows,)`` tensor): every row a batch touched then has
    ``row_l2 * row_scale[row] * weight[row]`` added to its gradient before the
    lazy step (with ``row_scale`` = 1 / the code's count: mini-batch aware L2).

    Parameters
    ----------
    params : iterable of parameters or dicts
        Parameters or parameter groups; a group may set ``sparse=True``.
    lr : float, default=1e-3
    betas : tuple of float, default=(0.9, 0.999)
    eps : float, default=1e-8
    weight_decay : float, default=0.0
        Decoupled weight decay of the dense parameters.
    fused : bool or None, default=None
        Passed to ``torch.optim.AdamW``.

    Examples
    --------
    >>> emb = torch.nn.Embedding(10, 3, sparse=True)
    >>> lin = torch.nn.Linear(3, 1)
    >>> opt = SparseDenseAdamW(
    ...     [{"params": emb.parameters(), "sparse": True}, {"params": lin.parameters()}]
    ... )
    >>> lin(emb(torch.tensor([1, 2]))).sum().backward()
    >>> opt.step()
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        fused=None,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, sparse=False
        )
        super().__init__(params, defaults)
        self.fused = fused
        dense = [g for g in self.param_groups if not g["sparse"]]
        sparse = [g for g in self.param_groups if g["sparse"]]
        self._dense = (
            torch.optim.AdamW(
                [{"params": g["params"]} for g in dense], lr=lr, fused=fused
            )
            if dense
            else None
        )
        self._sparse = (
            torch.optim.SparseAdam([{"params": g["params"]} for g in sparse], lr=lr)
            if sparse
            else None
        )
        self._pairs = list(self._pair_groups())

    def __getstate__(self):
        # torch's Optimizer pickles only defaults, state and param_groups: keep
        # the inner optimizers (and their moments), so a pickled net trains on
        state = super().__getstate__()
        state.update(fused=self.fused, _dense=self._dense, _sparse=self._sparse)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._pairs = list(self._pair_groups())

    def _pair_groups(self):
        """(outer group, inner group) pairs, dense groups first."""
        dense = [g for g in self.param_groups if not g["sparse"]]
        sparse = [g for g in self.param_groups if g["sparse"]]
        return self._inner_groups(dense, sparse)

    def _inner_groups(self, dense, sparse):
        if self._dense is not None:
            yield from zip(dense, self._dense.param_groups, strict=True)
        if self._sparse is not None:
            yield from zip(sparse, self._sparse.param_groups, strict=True)

    @torch.no_grad()
    def step(self, closure=None):
        """Run ``closure`` (if given) once, then update all parameters."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for outer, inner in self._pairs:  # follow LR schedulers on the outer groups
            inner["lr"] = outer["lr"]
            inner["betas"] = outer["betas"]
            inner["eps"] = outer["eps"]
            if "weight_decay" in inner:
                inner["weight_decay"] = outer["weight_decay"]
        if self._dense is not None:
            self._dense.step()
        for outer, inner in self._pairs:
            if outer["sparse"]:
                self._lazy_adam(outer, inner)
        return loss

    def _lazy_adam(self, outer: dict, inner: dict) -> None:
        """One lazy Adam step of a sparse group (torch's ``SparseAdam``
        arithmetic and state, kept in the inner ``SparseAdam``'s ``state`` so
        checkpoints and pickles are unchanged), with the group's row L2.

        Merging a batch's duplicate rows by marking them in a ``(rows,)`` mask
        is linear in the table and the batch, where ``coalesce()`` sorts; the
        moments and weights of the touched rows are updated with
        ``index_select`` / ``index_copy_`` / ``index_add_``.
        """
        beta1, beta2 = inner["betas"]
        lr, eps = float(inner["lr"]), inner["eps"]
        l2, scale = outer.get("row_l2", 0.0), outer.get("row_scale")
        for p in inner["params"]:
            if p.grad is None:
                continue
            if not p.grad.is_sparse:
                raise RuntimeError("a sparse parameter group received a dense gradient")
            rows, grad = _merged_rows(p.grad)  # (k,), (k, *width)
            if rows.numel() == 0:
                continue
            state = self._sparse.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)  # (R, *width)
                state["exp_avg_sq"] = torch.zeros_like(p)  # (R, *width)
            state["step"] += 1
            step = state["step"]
            if l2:
                factor = l2 * scale.to(p.device)[rows]  # (k,)
                factor = factor.view(-1, *[1] * (p.dim() - 1))  # (k, 1, ...)
                grad.addcmul_(factor, p.index_select(0, rows))  # (k, *width)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            m = exp_avg.index_select(0, rows).lerp_(grad, 1 - beta1)  # (k, *width)
            v = exp_avg_sq.index_select(0, rows)  # (k, *width)
            v.lerp_(grad.mul_(grad), 1 - beta2)  # (k, *width)
            exp_avg.index_copy_(0, rows, m)
            exp_avg_sq.index_copy_(0, rows, v)
            step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
            update = m.div_(v.sqrt_().add_(eps))  # (k, *width): m / (sqrt(v) + eps)
            p.index_add_(0, rows, update, alpha=-step_size)

    def state_dict(self):
        return {
            "dense": None if self._dense is None else self._dense.state_dict(),
            "sparse": None if self._sparse is None else self._sparse.state_dict(),
            "groups": super().state_dict()["param_groups"],
        }

    def load_state_dict(self, state_dict):
        if self._dense is not None:
            self._dense.load_state_dict(state_dict["dense"])
        if self._sparse is not None:
            self._sparse.load_state_dict(state_dict["sparse"])
        for group, saved in zip(self.param_groups, state_dict["groups"], strict=True):
            for key in ("lr", "betas", "eps", "weight_decay"):
                group[key] = saved[key]
        # torch's load_state_dict replaces the inner optimizers' group dicts:
        # pair the outer groups with the new ones, or LR changes made after a
        # resume (an LR scheduler) would go to the discarded dicts
        self._pairs = list(self._pair_groups())


# The row merge marks a ``(rows,)`` mask while the table has at most this many
# rows per gradient entry, and sorts the entries (``torch.unique``) beyond: the
# mask is linear in the table, the sort in the entries (n log n). With 32,768
# entries (~20k distinct rows) per step on one AMD EPYC core the two cross near
# 3e5 rows; see benchmarks/optim_step.py.
_MASK_ROWS_PER_ENTRY = 8


def _merged_rows(
    grad: torch.Tensor, method: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of a sparse ``(R, *width)`` gradient and their summed
    values, ``(k,)`` sorted and ``(k, *width)`` (a new tensor).

    ``method`` ("mask" or "sort", by default the one suiting the table size
    against the number of entries) only changes how the rows are found: both
    sum every row's entries in the same order, so their results are identical.
    """
    if grad.is_coalesced():
        return grad.indices()[0], grad.values().clone()
    index, values = grad._indices()[0], grad._values()  # (n,), (n, *width)
    n_rows = grad.shape[0]
    if method is None:
        method = "mask" if n_rows <= _MASK_ROWS_PER_ENTRY * index.numel() else "sort"
    if method == "mask":
        touched = torch.zeros(n_rows, dtype=torch.bool, device=grad.device)
        touched[index] = True  # (R,)
        rows = touched.nonzero().squeeze(1)  # (k,) sorted
        position = torch.empty(n_rows, dtype=torch.long, device=grad.device)
        position[rows] = torch.arange(rows.numel(), device=grad.device)  # (R,)
        inverse = position[index]  # (n,): each entry's place in rows
    elif method == "sort":
        rows, inverse = torch.unique(
            index, sorted=True, return_inverse=True
        )  # (k,), (n,)
    else:
        raise ValueError(f"method must be 'mask', 'sort' or None, got {method!r}")
    merged = values.new_zeros((rows.numel(), *values.shape[1:]))  # (k, *width)
    return rows, merged.index_add_(0, inverse, values)


def sparse_dense_groups(module: torch.nn.Module, sparse_names) -> list[dict]:
    """Parameter groups for :class:`SparseDenseAdamW` by parameter name.

    Parameters
    ----------
    module : torch.nn.Module
    sparse_names : collection of str
        Names (as in ``module.named_parameters()``) of the parameters with
        sparse gradients.

    Returns
    -------
    groups : list of dict
        A dense group and a group flagged ``sparse=True``.
    """
    named = list(module.named_parameters())
    return [
        {"params": [p for n, p in named if n not in sparse_names]},
        {"params": [p for n, p in named if n in sparse_names], "sparse": True},
    ]
