"""sk_fibinet: scikit-learn FiBiNET estimators for tabular and CTR data."""

from ._classifier import FiBiNETClassifier
from ._malloc import tune_malloc
from ._onnx import register_skl2onnx, to_onnx
from ._onnx_encoding import onnx_inputs
from ._persistence import load_model, save_model
from ._regressor import FiBiNETRegressor
from ._sources import UnknownCategoryWarning
from ._streaming import ParquetSource
from ._version import __version__

__all__ = [
    "FiBiNETClassifier",
    "FiBiNETRegressor",
    "ParquetSource",
    "UnknownCategoryWarning",
    "load_model",
    "onnx_inputs",
    "register_skl2onnx",
    "save_model",
    "to_onnx",
    "tune_malloc",
    "__version__",
]
