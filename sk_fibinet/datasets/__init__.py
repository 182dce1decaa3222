"""Datasets: Adult, bundled with sk_fibinet, and a synthetic table whose
informative columns are known."""

from ._adult import load_adult
from ._synthetic import make_signal_and_noise

__all__ = ["load_adult", "make_signal_and_noise"]
