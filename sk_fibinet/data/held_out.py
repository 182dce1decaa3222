"""The held-out rows and the target statistics.

Rows held out for early stopping get statistics of the training rows only,
while they decide when to stop; once that is done they join the statistics
(:func:`add_held_out_rows`), so that prediction uses every row, as a fit
without early stopping does.
"""

from __future__ import annotations


def add_held_out_rows(statistics, held) -> None:
    """Update ``statistics`` with held-out rows, once early stopping is done.

    ``held`` is a list of ``(frame, target, weight, positions)``, the rows left
    out of the statistics while they decided early stopping.
    """
    for frame, target, weight, positions in held:
        statistics.update(frame, target, weight=weight, positions=positions)
