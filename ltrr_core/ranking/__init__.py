"""The learned ranker: features (one function for serving and training), labels and position
bias from logs, CatBoost training split by time, evaluation, and the artifact the runtime loads.

* ``features``  -- ``candidate_features`` and the versioned feature spec
* ``labels``    -- graded labels, the position-based click model (EM), IPS weights
* ``dataset``   -- logs -> training set, and its contract (``data_contracts/ranker_training.json``)
* ``train``     -- nightly ``fit`` (train before D, validate on D-1, evaluate on D)
* ``evaluate``  -- contenders on replayed pools: simulated days (ground truth) and real CPCD
* ``model``     -- ``Ranker``: ranker.json + model.cbm, loaded without the training stack
"""
