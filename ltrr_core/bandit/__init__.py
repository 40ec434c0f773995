"""Learning to retrieve: the contextual bandit that picks a retrieval plan per request.

``features`` (serving = training), ``training`` (rewards, counterfactual replay), ``learner``
(nightly training, publication, off-policy report), ``ope`` (estimators), ``obd`` (the Open
Bandit Dataset check), ``evaluate`` (nights of simulation), ``tracking`` (MLflow). Only
``features`` and ``ope`` are imported here: the runtime loads this package and must not pull
in the training stack."""

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
