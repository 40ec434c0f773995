"""Learning to retrieve: off-policy evaluation now; the contextual bandit over retrieval plans
builds on it (issue 5)."""

from .ope import (ESTIMATORS, IPS, SNIPS, DirectMethod, DoublyRobust, Estimate, LoggedFeedback, SwitchDR,
                  effective_sample_size, make_estimators)

__all__ = ["ESTIMATORS", "IPS", "SNIPS", "DirectMethod", "DoublyRobust", "Estimate", "LoggedFeedback", "SwitchDR",
           "effective_sample_size", "make_estimators"]
