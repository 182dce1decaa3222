"""The training engine (one recipe for every path), the skorch net and
its callbacks, checkpoints, data-parallel processes, explanations learned at
the end of fit.

Internal: use the names ``sk_fibinet`` exports."""
