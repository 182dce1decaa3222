"""sk_fibinet: a scikit-learn FiBiNET classifier for tabular and CTR data."""

from ._classifier import FiBiNETClassifier
from ._persistence import load_model, save_model

__version__ = "0.1.0"

__all__ = ["FiBiNETClassifier", "load_model", "save_model", "__version__"]
