"""A GENERATED catalog for scale runs, derived from the real one.

Nothing here is real data: titles are real titles recombined (a real title, sometimes with a
real version marker or a second real title's words), artists are real artist names drawn at
random, tags are real tags drawn with their real frequencies. Vectors for the generated
entities are real MiniLM vectors of the real entities plus Gaussian noise, renormalised, so
the ANN index sees the clustered structure of real embeddings rather than uniform noise
(on which every ANN index looks bad). Ids start with ``gen:`` and the source is ``generated``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schema as S

_MARKERS = ["", "", "", "", " (Live)", " (Remix)", " (Acoustic)", " (Remastered)", " (Radio Edit)", " (Instrumental)"]


def generate_catalog(real: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    titles = real[S.TITLE].dropna().to_numpy()
    artist_names = np.array(sorted({a for artists in real[S.ARTISTS] for a in artists}))
    tag_lists = [list(t) for t in real[S.TAGS] if len(t)]
    title_a = titles[rng.integers(0, len(titles), n)]
    title_b = titles[rng.integers(0, len(titles), n)]
    mix = rng.random(n) < 0.3
    second_words = [" ".join(str(b).split()[:2]) for b in title_b]
    markers = np.array(_MARKERS)[rng.integers(0, len(_MARKERS), n)]
    generated_titles = [
        f"{a} {w}{m}" if use else f"{a}{m}" for a, w, m, use in zip(title_a, second_words, markers, mix)
    ]
    artists = artist_names[rng.integers(0, len(artist_names), n)]
    picks = rng.integers(0, len(tag_lists), n)
    tags = [tag_lists[i][:5] for i in picks]
    return pd.DataFrame(
        {
            S.ID: [f"gen:{i:07d}" for i in range(n)],
            S.TYPE: np.where(rng.random(n) < 0.9, "track", "artist"),
            S.TITLE: generated_titles,
            S.ARTISTS: [[a] for a in artists],
            S.ALBUM: None,
            S.DESCRIPTION: None,
            S.TAGS: tags,
            S.TAG_WEIGHTS: [[round(1.0 - 0.15 * j, 2) for j in range(len(t))] for t in tags],
            S.POPULARITY: rng.pareto(1.5, n).round(2),
            S.SOURCE: "generated",
            S.SOURCE_ID: None,
            S.CLUSTER_ID: None,
            S.LINKED_ARTIST_IDS: [[] for _ in range(n)],
        }
    )


def derived_vectors(real_vectors: np.ndarray, n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """n vectors: real vectors drawn at random plus Gaussian noise, L2-normalised (GENERATED)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real_vectors.shape[1]), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        size = min(step, n - start)
        base = real_vectors[rng.integers(0, len(real_vectors), size)]
        noisy = base + rng.normal(0.0, noise, base.shape).astype(np.float32)
        out[start : start + size] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out
