"""The feature functions serving and learning share: the retrieval policy's query features
(``policy``) and the ranker's candidate features (``ranking``). One code path: the runtime
computes and logs them, the learners read them back; neither side imports the other."""
