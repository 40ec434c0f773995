"""doc2query generators: templates on real entities, a tiny random T5 through the seq2seq
backend into Q2E rows, and Doc2Query-- filtering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltrr_core.config import Seq2SeqConfig
from ltrr_core.doc2query import RelevanceFilter, TemplateGenerator, predict_q2e
from ltrr_core.memory import blend, observed_statistics


def _taylor_swift(real_entities) -> pd.DataFrame:
    tracks = real_entities[
        (real_entities["source"] == "cpcd")
        & real_entities["artists"].map(lambda a: a is not None and "Taylor Swift" in list(a))
    ]
    return tracks[tracks["title"].isin(["Love Story", "Lover", "Anti-Hero"])]


def test_templates_on_real_entities(real_entities, test_settings):
    generator = TemplateGenerator(test_settings.doc2query.templates, test_settings.doc2query.max_tags_per_entity)
    artist = real_entities[(real_entities["type"] == "artist") & (real_entities["title"] == "Taylor Swift")]
    predicted, report = predict_q2e(pd.concat([_taylor_swift(real_entities), artist]), [generator])
    queries = set(predicted["query"])
    assert {"love story taylor swift", "taylor swift love story", "love story", "lover", "anti hero"} <= queries
    assert {"taylor swift", "taylor swift songs"} <= queries
    assert any(q.endswith(" music") for q in queries)  # "<tag> music" from the artist's real tags
    assert predicted.duplicated(["query", "entity_id"]).sum() == 0
    assert predicted["score"].between(0, 1).all() and report["kept"] == len(predicted)


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory, real_entities):
    """A randomly initialised 2-layer T5 with a word-level tokenizer over real catalog words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted({w for t in real_entities["title"].dropna().head(2000) for w in str(t).lower().split()})[:500]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_seq2seq_backend_generates_into_q2e_rows(tiny_t5, real_entities, test_settings):
    from ltrr_core.doc2query.seq2seq import Seq2SeqGenerator

    config = Seq2SeqConfig(model_path=str(tiny_t5), batch_size=2, num_return_sequences=3, max_new_tokens=6)
    entities = _taylor_swift(real_entities)
    generated = Seq2SeqGenerator(config).generate(entities)
    assert len(generated) > 0 and set(generated["generator"]) == {"seq2seq"}
    assert set(generated["entity_id"]) <= set(entities["id"])
    assert generated.groupby("entity_id").size().max() <= 3
    assert generated["score"].between(0, 1).all()

    again = Seq2SeqGenerator(config).generate(entities)  # seeded sampling is reproducible
    assert generated.equals(again)

    predicted, _ = predict_q2e(entities, [Seq2SeqGenerator(config)])
    table = blend(
        predicted,
        observed_statistics(
            pd.DataFrame(columns=["request_id", "query", "entity_id", "position", "event", "timestamp"]),
            test_settings.memory,
        ),
        test_settings.memory,
        pd.Timestamp.now(tz="UTC"),
    )
    assert len(table) == len(predicted) and set(table["source"]) == {"predicted"}
    assert set(table["generator"]) == {"seq2seq"}


def test_seq2seq_needs_a_local_checkpoint(tmp_path):
    from ltrr_core.doc2query.seq2seq import Seq2SeqGenerator

    with pytest.raises(ValueError, match="model_path is not set"):
        Seq2SeqGenerator(Seq2SeqConfig())
    with pytest.raises(FileNotFoundError, match="not a directory"):
        Seq2SeqGenerator(Seq2SeqConfig(model_path=str(tmp_path / "missing")))


def test_doc2query_minus_drops_queries_that_do_not_fit_their_entity():
    rng = np.random.default_rng(0)
    entity_vectors = {e: v / np.linalg.norm(v) for e, v in zip("abcdefghijkl", rng.normal(size=(12, 8)))}
    rows = []
    for entity in entity_vectors:
        rows.append((entity, f"good {entity}", 0.5, "log_neighbours"))
        rows.append((entity, f"bad {entity}", 0.5, "log_neighbours"))
    rows.append(("a", "template a", 0.5, "templates"))
    generated = pd.DataFrame(rows, columns=["entity_id", "query", "score", "generator"])

    def encode(texts):
        out = []
        for text in texts:
            kind, entity = text.split()
            vector = entity_vectors[entity] if kind == "good" else -entity_vectors[entity]
            out.append(vector)
        return np.array(out)

    relevance = RelevanceFilter(encode, lambda ids: np.array([entity_vectors[i] for i in ids]), 0.25, 0.1)
    kept, report = relevance.apply(generated)
    assert set(kept["query"]) == {f"good {e}" for e in entity_vectors} | {"template a"}
    assert report == {"checked": 24, "dropped": 12}
