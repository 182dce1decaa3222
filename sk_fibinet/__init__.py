"""sk_fibinet: a scikit-learn FiBiNET classifier for tabular and CTR data."""

from ._estimator import FiBiNETClassifier

__version__ = "0.1.0"

__all__ = ["FiBiNETClassifier", "__version__"]
