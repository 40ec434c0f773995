"""The serving forms of learned models, beneath both sides: the runtime serves them, the learners
fit and evaluate them, neither importing the other. ``policy``: the retrieval policies (the
apprentice and the learned one) with their exact propensities; ``ranker``: the CatBoost ranker
artifact (model, spec, SHAP contributions)."""
