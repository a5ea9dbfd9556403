"""The optional point candidates (River regressors) beside persistence.

Every candidate forecasts the *volatility-normalised* log-return ``z = y / sigma`` where
``y = ln p(t+H) / p(t)`` and ``sigma`` is the volatility expected over the horizon at ``t``.
Normalising puts every coin and every market regime on the same scale, so River's default
priors and split criteria fit, and a forecast can never be a wild multiple of the current
volatility (``z`` is clipped).
"""

from __future__ import annotations

from river import base, forest, linear_model, preprocessing, tree

PERSISTENCE = "persistence"
Z_CLIP = 3.0
LABEL_CLIP = 10.0


def make_candidate(name: str, seed: int, arf_trees: int = 10) -> base.Regressor:
    """A fresh River regressor for one candidate name of ``config.CANDIDATES``."""
    if name == "bayes_linear":
        model: base.Regressor = linear_model.BayesianLinearRegression()
    elif name == "hoeffding_tree":
        model = tree.HoeffdingAdaptiveTreeRegressor(grace_period=200, seed=seed)
    elif name == "arf":
        model = forest.ARFRegressor(n_models=arf_trees, seed=seed)
    else:
        raise ValueError(f"unknown candidate {name!r}")
    pipeline: base.Regressor = preprocessing.StandardScaler() | model  # type: ignore[assignment]
    return pipeline


def normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF.

    >>> round(normal_quantile(0.95), 4)
    1.6449
    """
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)
