"""The learned ranker: labels and position bias from logs, CatBoost training split by time,
evaluation. The features (one function for serving and training) live in
``ltrr_core.features.ranking``, the artifact the runtime loads in ``ltrr_core.models.ranker``.

* ``labels``    -- graded labels, the position-based click model (EM), IPS weights
* ``dataset``   -- logs -> training set, and its contract (``data_contracts/ranker_training.json``)
* ``estimator`` -- ``RankerEstimator(config).fit(train, valid, features) -> FittedRanker`` (losses
                   compared, the position-bias reference); fitting only
* ``train``     -- the night: ``training_data`` (real engagement and/or logs before D), the
                   estimator, evaluation, and a version in the ranker store (``train_night``)
* ``evaluate``  -- contenders on replayed pools: simulated days (ground truth) and real CPCD
"""
