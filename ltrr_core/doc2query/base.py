"""The one interface every Q2E generator implements.

``generate(entities) -> DataFrame[entity_id, query, score, generator]``: for each entity, the
queries a person might type to find it, with a score in (0, 1] that the memory index uses as
the prior engagement rate of the (query, entity) pair. Queries are normalised by the caller
(``predict_q2e``) with the same function as every index.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

COLUMNS = ["entity_id", "query", "score", "generator"]


@runtime_checkable
class Q2EGenerator(Protocol):
    name: str

    def generate(self, entities: pd.DataFrame) -> pd.DataFrame: ...


def empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity_id": pd.Series(dtype=str),
            "query": pd.Series(dtype=str),
            "score": pd.Series(dtype=float),
            "generator": pd.Series(dtype=str),
        }
    )
