"""structured and memory strategies on the built test platform, the generate_q2e flow, and
`ltrr search --json`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from ltrr_core.retrieval.base import Query

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_searcher(q2e_platform):
    from ltrr_core.retrieval.searcher import entity_lookup, load_searcher

    settings = q2e_platform[0]
    return load_searcher(settings), entity_lookup(settings)


def _rows(entities, candidates, n):
    return entities.loc[list(candidates.ids[:n])]


def _best_reading_rows(searcher, text):
    query = searcher.query(text)
    best = query.understanding.best
    match = searcher.strategies["structured"].match(best)
    return best, match, searcher.strategies["structured"].index.ids[match.rows]


def test_structured_version_filter_filters(full_searcher):
    searcher, entities = full_searcher
    best, match, ids = _best_reading_rows(searcher, "coldplay live")
    assert {("artist", "coldplay"), ("version", "live")} <= {(s.kind, s.value) for s in best.slots}
    assert len(ids) > 0 and not match.relaxed
    rows = entities.loc[list(ids)]
    assert rows["version_types"].map(lambda v: "live" in list(v)).all()
    assert rows["artists"].map(lambda a: "Coldplay" in list(a)).all()
    unfiltered = searcher.strategies["structured"].index.postings("artist", "coldplay")
    assert len(unfiltered) > len(ids)  # the filter removed Coldplay's studio tracks
    result = searcher.strategies["structured"].retrieve(searcher.query("coldplay live"), 20)
    assert result.ids[0] in set(ids)  # and the filtered reading ranks first


def test_structured_decade_and_tag_filters_filter(full_searcher, q2e_platform):
    from ltrr_core.catalog.store import CatalogStore

    searcher, _ = full_searcher
    catalog = CatalogStore(q2e_platform[0].data_dir / "catalog").load().set_index("id")
    best, match, ids = _best_reading_rows(searcher, "80s female vocalists")
    assert {("decade", "1980"), ("tag", "female vocalists")} <= {(s.kind, s.value) for s in best.slots}
    assert len(ids) >= 10 and not match.relaxed
    rows = catalog.loc[list(ids)]
    assert rows["decades"].map(lambda d: 1980 in list(d)).all()
    assert rows["tags"].map(lambda t: "female vocalists" in [x.lower() for x in t]).all()
    tagged = searcher.strategies["structured"].index.postings("tag", "female vocalists")
    assert len(tagged) > len(ids)


def test_structured_relaxes_an_impossible_filter_instead_of_returning_nothing(full_searcher):
    searcher, entities = full_searcher
    result = searcher.strategies["structured"].retrieve(searcher.query("live acoustic ed sheeran"), 20)
    assert len(result) > 0 and result.meta["n_relaxed_filters"] > 0
    assert _rows(entities, result, 5)["artists"].map(lambda a: "Ed Sheeran" in list(a)).all()


def test_tayler_love_reaches_love_story_and_lover(full_searcher):
    searcher, entities = full_searcher
    result = searcher.search("tayler love", k=100)
    structured = _rows(entities, result.per_strategy["structured"], 10)
    titles = set(structured["title"])
    assert {"Love Story", "Lover"} <= titles
    fused_top = entities.loc[[c.entity_id for c in result.fused[:10]]]
    assert fused_top["artists"].map(lambda a: "Taylor Swift" in list(a)).sum() >= 5


def test_generate_q2e_is_incremental_and_memory_learns_from_train_logs(q2e_platform, full_searcher):
    from flows.generate_q2e import generate_q2e
    from ltrr_core.memory.build import q2e_store

    settings, manifest, config_file = q2e_platform
    assert manifest["scope"]["mode"] == "full"
    assert manifest["rows_by_source"]["predicted"] > 0 and manifest["rows_by_source"]["observed"] > 0
    assert manifest["doc2query"]["generated"]["templates"] > 0
    first = q2e_store(settings).load()

    again = generate_q2e(str(config_file))  # same catalog: nothing to predict, same table
    assert again["scope"]["mode"] == "incremental" and again["scope"]["n_to_predict"] == 0
    second = q2e_store(settings).load()
    columns = ["query", "entity_id", "score", "source"]
    assert (
        first[columns]
        .sort_values(columns[:2])
        .reset_index(drop=True)
        .equals(second[columns].sort_values(columns[:2]).reset_index(drop=True))
    )

    searcher, _ = full_searcher
    liked = first[(first["source"] == "observed") & (first["n_engaged"] > 0)].iloc[0]
    result = searcher.strategies["memory"].retrieve(Query(liked["query"]), 10)
    assert liked["entity_id"] in result.ids and result.meta["match"] == "exact"


def test_search_json_shape(q2e_platform):
    _, _, config_file = q2e_platform
    out = CliRunner().invoke(app, ["--config", str(config_file), "search", "tayler love", "--json", "-k", "5"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    assert payload["query"] == "tayler love"
    assert payload["qu"]["normalised"] == "tayler love"
    assert set(payload["qu"]["intent"]) == {"lookup", "browse", "mixed"}
    assert payload["qu"]["interpretations"][0]["slots"]
    assert len(payload["results"]) == 5
    first = payload["results"][0]
    assert set(first) == {"entity_id", "type", "title", "artists", "strategies", "score"}
    assert {s["name"] for r in payload["results"] for s in r["strategies"]} >= {"lexical", "structured"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [("", "empty"), ("x" * 10_000, "limit is 512"), ("?!...", "no letters or digits"), ("\x00\x01", "no letters")],
)
def test_search_cli_answers_bad_input_with_a_clear_error(q2e_platform, bad, message):
    _, _, config_file = q2e_platform
    out = CliRunner().invoke(app, ["--config", str(config_file), "search", bad])
    assert out.exit_code == 2
    assert "invalid query" in out.output and message in out.output
