"""Doc2Query-- (Gospodinov et al., 2023): drop generated queries that do not fit their own entity.

Generators hallucinate; a query that scores low for the entity it was generated for mostly
adds noise to the index. Relevance here is the MiniLM cosine between the query and the
entity (the same encoder as the vector index, so the entity side is already computed).
A query is dropped when its relevance is below ``min_relevance`` or in the lowest
``drop_fraction`` of its generator's output. Templates are exempt: they are built from the
entity's own fields, and encoding every template query would cost more than it could remove.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class RelevanceFilter:
    exempt = ("templates",)

    def __init__(self, encode, entity_vectors, min_relevance: float, drop_fraction: float):
        self.encode = encode  # texts -> (n, d) unit vectors
        self.entity_vectors = entity_vectors  # ids -> (n, d) unit vectors
        self.min_relevance = min_relevance
        self.drop_fraction = drop_fraction

    def apply(self, generated: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        checked = generated[~generated["generator"].isin(self.exempt)]
        if checked.empty:
            return generated, {"checked": 0, "dropped": 0}
        distinct = checked["query"].unique().tolist()
        query_vectors = dict(zip(distinct, self.encode(distinct)))
        entity_vectors = self.entity_vectors(checked["entity_id"].tolist())
        relevance = np.einsum("ij,ij->i", np.stack([query_vectors[q] for q in checked["query"]]), entity_vectors)
        keep = relevance >= self.min_relevance
        for generator in checked["generator"].unique():
            mine = (checked["generator"] == generator).to_numpy()
            if mine.sum() >= 10 and self.drop_fraction > 0:
                cutoff = np.quantile(relevance[mine], self.drop_fraction)
                keep &= ~mine | (relevance > cutoff)
        kept = pd.concat([generated[generated["generator"].isin(self.exempt)], checked[keep]], ignore_index=True)
        return kept, {"checked": int(len(checked)), "dropped": int((~keep).sum())}
