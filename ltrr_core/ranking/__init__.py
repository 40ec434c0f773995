"""The learned ranker: labels and position bias from logs, CatBoost training split by time,
evaluation. The features (one function for serving and training) live in
``ltrr_core.features.ranking``, the artifact the runtime loads in ``ltrr_core.models.ranker``.

* ``labels``    -- graded labels, the position-based click model (EM), IPS weights
* ``dataset``   -- logs -> training set, and its contract (``data_contracts/ranker_training.json``)
* ``train``     -- nightly ``fit`` (train before D, validate on D-1, evaluate on D)
* ``evaluate``  -- contenders on replayed pools: simulated days (ground truth) and real CPCD
"""
