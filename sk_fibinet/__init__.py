"""sk_fibinet: scikit-learn FiBiNET estimators for tabular and CTR data."""

from ._version import __version__
from .data.chunk_source import UnknownCategoryWarning
from .data.parquet import ParquetSource
from .estimators.classifier import FiBiNETClassifier
from .estimators.regressor import FiBiNETRegressor
from .io.onnx import register_skl2onnx, to_onnx
from .io.onnx_encoding import onnx_inputs
from .io.persistence import load_model, save_model
from .training.malloc import tune_malloc

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
