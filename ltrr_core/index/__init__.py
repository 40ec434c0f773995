"""Index builds: BM25 (bm25s), vectors (Lance), and the build manifest."""
