"""Learning to retrieve: the contextual bandit that picks a retrieval plan per request.

``training`` (rewards, counterfactual replay), ``estimator`` (``PolicyEstimator.fit(rows) ->
FittedPolicy``), ``learner`` (the night: window, replay into rows, publication,
off-policy report), ``ope`` (estimators), ``obd`` (the Open Bandit Dataset check),
``latency`` (stage cost lines), ``tracking`` (MLflow). The policy's features (serving = training) live
in ``ltrr_core.features.policy``, the policies the runtime serves in ``ltrr_core.models.policy``."""

from .ope import (
    ESTIMATORS,
    IPS,
    SNIPS,
    DirectMethod,
    DoublyRobust,
    Estimate,
    LoggedFeedback,
    SwitchDR,
    effective_sample_size,
    make_estimators,
)

__all__ = [
    "ESTIMATORS",
    "IPS",
    "SNIPS",
    "DirectMethod",
    "DoublyRobust",
    "Estimate",
    "LoggedFeedback",
    "SwitchDR",
    "effective_sample_size",
    "make_estimators",
]
