"""fastgd: gradient descent for linear models, written three ways (numpy, numba, jax)."""

from .api import DivergenceError, FitResult, check_grad, fit
from .backends import available_backends, get_backend
from .data import make_classification, make_regression
from .estimators import GDClassifier, GDRegressor
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
    "GDRegressor",
    "Hinge",
    "Huber",
    "InvScaling",
    "Logistic",
    "ModifiedHuber",
    "Multinomial",
    "RMSProp",
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
]
