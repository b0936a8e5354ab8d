"""fastgd: gradient descent for linear models, written three ways (numpy, numba, jax)."""

from ._rows import release_staging as release_staging_buffers
from .api import check_grad, fit
from .backends import available_backends, get_backend
from .data import make_classification, make_regression
from .result import DivergenceError, FitResult
from .sklearn_shuffle import SklearnShuffle
from .specs import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    Cosine,
    EpsilonInsensitive,
    Exponential,
    Hinge,
    Huber,
    InvScaling,
    Logistic,
    ModifiedHuber,
    Multinomial,
    OneClassHinge,
    PassiveAggressive,
    Perceptron,
    RMSProp,
    Squared,
    SquaredEpsilonInsensitive,
    SquaredHinge,
    cosine,
    exponential,
    invscaling,
)

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Cosine",
    "DivergenceError",
    "EpsilonInsensitive",
    "Exponential",
    "FitResult",
    "GDClassifier",
    "GDOneClassSVM",
    "GDRegressor",
    "Hinge",
    "Huber",
    "InvScaling",
    "Logistic",
    "ModifiedHuber",
    "Multinomial",
    "OneClassHinge",
    "PassiveAggressive",
    "Perceptron",
    "RMSProp",
    "SklearnShuffle",
    "Squared",
    "SquaredEpsilonInsensitive",
    "SquaredHinge",
    "available_backends",
    "check_grad",
    "cosine",
    "exponential",
    "fit",
    "get_backend",
    "invscaling",
    "make_classification",
    "make_regression",
    "release_staging_buffers",
]


def __getattr__(name: str):
    """The scikit-learn estimators, imported on first use (they need scikit-learn)."""
    if name in ("GDRegressor", "GDClassifier", "GDOneClassSVM"):
        try:
            from . import estimators, oneclass
        except ImportError as exc:
            raise ImportError(
                f"fastgd.{name} needs scikit-learn: pip install 'fastgd[sklearn]' ({exc})"
            ) from exc
        return getattr(oneclass if name == "GDOneClassSVM" else estimators, name)
    raise AttributeError(f"module 'fastgd' has no attribute {name!r}")
