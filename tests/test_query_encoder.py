"""The ONNX query encoder: exported and gated by the index build, carried by the bundle, served
without torch, and in the same space as the torch model's document vectors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ltrr_core.index.query_encoder import OnnxQueryEncoder, QueryEncoderError, read_spec

pytestmark = pytest.mark.slow


def test_the_build_exports_an_int8_encoder_that_agrees_with_the_torch_model(built_platform):
    settings, _, build_manifest, _ = built_platform
    report = build_manifest["query_encoder"]
    assert report["kind"] == "onnx_int8"
    assert report["agreement"]["mean_cosine"] >= settings.embedding.query_min_cosine
    assert report["agreement"]["n_texts"] >= 100
    spec = read_spec(settings.data_dir / "indexes" / "builds" / build_manifest["build_id"] / "query_encoder")
    assert spec.precision == "int8" and spec.dim == 384 and spec.model == settings.embedding.model


def test_the_build_embeds_documents_with_an_fp32_export_that_gives_the_torch_models_vectors(built_platform):
    """The catalog's vectors in the Lance table were written by the fp32 ONNX document encoder in
    padded batches; on real entity texts they are the torch model's vectors (cosine 1 to 1e-4),
    and a text's vector does not depend on its batch-mates."""
    from ltrr_core.catalog import CatalogStore
    from ltrr_core.index import build
    from ltrr_core.index.documents import embedding_input
    from ltrr_core.index.encoder import OnnxDocumentEncoder, shared_encoder
    from ltrr_core.index.vector import ID, VECTOR, open_db

    settings, catalog_manifest, build_manifest, _ = built_platform
    assert build_manifest["document_encoder"]["agreement"]["n_texts"] >= 100  # gated on real name lines
    entities = CatalogStore(settings.data_dir / "catalog").load(catalog_manifest["version"])
    picked = entities.sample(240, random_state=3)
    texts = [
        embedding_input(row, settings.embedding.max_tags_in_text, settings.embedding.name_weight)
        for row in picked.to_dict("records")
    ]
    reference = build.blend_embeddings(shared_encoder(settings.embedding), texts)
    table = open_db(settings.data_dir / "indexes" / "lance").open_table(settings.vector.table)
    stored = table.to_arrow().select([ID, VECTOR]).to_pandas().set_index(ID).loc[picked[ID], VECTOR]
    cosine = (
        (np.stack(stored.to_numpy()) * reference).sum(axis=1)
        / np.linalg.norm(reference, axis=1)
        / np.linalg.norm(np.stack(stored.to_numpy()), axis=1)
    )
    assert cosine.min() >= 0.9999, picked[ID].iloc[int(cosine.argmin())]

    encoder = build.document_encoder(settings, [])  # the build's export, from the cache
    assert isinstance(encoder, OnnxDocumentEncoder)
    whole = [t.full for t in texts]
    batched = encoder.encode(whole)
    alone = np.stack([encoder.encode([text])[0] for text in whole[:20]])
    np.testing.assert_allclose(batched[:20], alone, atol=2e-5)


def test_an_int8_export_is_refused_as_a_document_encoder(built_platform):
    from ltrr_core.index.encoder import OnnxDocumentEncoder

    settings, _, build_manifest, _ = built_platform
    int8 = settings.data_dir / "indexes" / "builds" / build_manifest["build_id"] / "query_encoder"
    with pytest.raises(QueryEncoderError, match="must be fp32"):
        OnnxDocumentEncoder(int8, threads=1, batch_size=8)


def test_query_vectors_find_the_same_entities_as_the_torch_model(built_platform):
    """Real CPCD search queries, the platform's own Lance table (the torch model's vectors): the
    int8 query vectors retrieve nearly the same top 10 as the torch model's."""
    from ltrr_core.index.encoder import shared_encoder
    from ltrr_core.index.vector import open_db, search_vectors

    settings, _, build_manifest, _ = built_platform
    onnx = OnnxQueryEncoder(
        settings.data_dir / "indexes" / "builds" / build_manifest["build_id"] / "query_encoder", cache_size=0
    )
    torch_model = shared_encoder(settings.embedding)
    labels = pd.read_csv(settings.shared_path(settings.catalog.paths.cpcd_labels), sep="\t", dtype=str)
    queries = labels["search_query"].dropna().drop_duplicates().head(60).tolist()
    table = open_db(settings.data_dir / "indexes" / "lance").open_table(settings.vector.table)
    ours, theirs = onnx.encode(queries), torch_model.encode(queries)
    assert float((ours * theirs).sum(axis=1).mean()) >= settings.embedding.query_min_cosine
    overlaps = []
    for mine, reference in zip(ours, theirs):
        a = {e for e, _ in search_vectors(table, mine, 10, settings.vector)}
        b = {e for e, _ in search_vectors(table, reference, 10, settings.vector)}
        overlaps.append(len(a & b) / 10)
    assert np.mean(overlaps) >= 0.8


def test_repeated_queries_come_from_the_cache_and_batches_match_single_queries(built_platform):
    settings, _, build_manifest, _ = built_platform
    encoder = OnnxQueryEncoder(
        settings.data_dir / "indexes" / "builds" / build_manifest["build_id"] / "query_encoder", cache_size=2
    )
    first = encoder.encode(["party rock anthem"])
    again = encoder.encode(["party rock anthem"])
    assert encoder.cache_info() == {"hits": 1, "misses": 1, "size": 1}
    np.testing.assert_array_equal(first, again)
    several = encoder.encode(["songs like adele with a long tail of words", "party rock anthem"])
    np.testing.assert_array_equal(several[1], first[0])  # a vector never depends on its batch-mates
    assert np.allclose(np.linalg.norm(several, axis=1), 1.0, atol=1e-4)
    assert encoder.cache_info()["hits"] == 2 and encoder.cache_info()["size"] == 2


def test_a_tampered_encoder_is_refused(built_platform, tmp_path):
    import shutil

    settings, _, build_manifest, _ = built_platform
    copy = tmp_path / "query_encoder"
    shutil.copytree(settings.data_dir / "indexes" / "builds" / build_manifest["build_id"] / "query_encoder", copy)
    with open(copy / "model.onnx", "r+b") as handle:
        handle.seek(-16, 2)
        handle.write(b"\0" * 16)
    with pytest.raises(QueryEncoderError, match="model.onnx does not match the checksum"):
        OnnxQueryEncoder(copy)


def test_the_export_gate_refuses_and_publishes_nothing(built_platform, tmp_path):
    """A gate no int8 export can pass (cosine 1.0 on every sample text): refused, no directory."""
    from ltrr_core.index.onnx_export import export_query_encoder

    settings = built_platform[0]
    strict = settings.embedding.model_copy(update={"query_min_cosine": 1.0})
    target = tmp_path / "export"
    with pytest.raises(QueryEncoderError, match="below embedding.query_min_cosine 1.0; not published"):
        export_query_encoder(strict, target, ["party rock anthem", "bruno mars", "80s female vocalists"] * 8)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_serving_a_bundle_imports_neither_torch_nor_sentence_transformers(bundle_dir, q2e_platform):
    config_file = q2e_platform[2]
    code = (
        "import sys; from pathlib import Path\n"
        "from ltrr_core.config import load_settings\n"
        "from ltrr_core.runtime import load_service\n"
        f"service = load_service(load_settings({str(config_file)!r}), Path({str(bundle_dir)!r}))\n"
        "response = service.search('party rock anthem', explore=False)\n"
        "assert response.results and type(service.strategies['semantic'].encoder).__name__ == 'OnnxQueryEncoder'\n"
        "print([m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_bundle_carries_the_encoder_and_promotion_gates_it(bundle_dir, q2e_platform):
    from ltrr_core.artifacts import verify_bundle
    from ltrr_core.promotion import gate_query_encoder

    settings = q2e_platform[0]
    files = verify_bundle(bundle_dir)["files"]
    assert {"query_encoder/model.onnx", "query_encoder/tokenizer.json", "query_encoder/encoder.json"} <= set(files)
    passed = gate_query_encoder(settings, bundle_dir)
    assert passed.passed and passed.numbers["precision"] == "int8"
    stricter = settings.with_overrides(**{"embedding.query_min_cosine": 0.99999})
    refused = gate_query_encoder(stricter, bundle_dir)
    assert not refused.passed and "below 0.99999" in refused.reason


def test_serving_reads_the_built_vector_table_with_pylance_exactly_as_lancedb_searches_it(built_platform):
    """The build writes the table with LanceDB; the runtime opens the bundle's pinned version with
    pylance alone (``open_vectors``). Real CPCD queries: the same entities, in the same order, with
    the same scores as LanceDB's own query builder gives, for the ANN search, the exact one and
    the type-filtered one."""
    from ltrr_core.index.vector import ID, TYPE, _search, open_db, open_vectors

    settings, _, build_manifest, _ = built_platform
    config, vectors = settings.vector, build_manifest["vectors"]
    served = open_vectors(settings.data_dir / "indexes" / "lance", vectors["table"], vectors["table_version"])
    built = open_db(settings.data_dir / "indexes" / "lance").open_table(vectors["table"])
    built.checkout(vectors["table_version"])

    def lancedb_search(query, k, exact=False, where=None):
        builder = built.search(query, vector_column_name="vector").distance_type(config.metric)
        builder = builder.select([ID, TYPE, "_distance"]).limit(k)
        if where:
            builder = builder.where(where, prefilter=True)
        if exact:
            builder = builder.bypass_vector_index()
        else:
            builder = builder.nprobes(config.nprobes)
            builder = builder.refine_factor(config.refine_factor) if config.refine_factor else builder
        rows = builder.to_arrow().to_pydict()
        return [(i, t, 1.0 - float(d)) for i, t, d in zip(rows[ID], rows[TYPE], rows["_distance"])]

    onnx = OnnxQueryEncoder(settings.data_dir / "indexes" / "builds" / build_manifest["build_id"] / "query_encoder")
    labels = pd.read_csv(settings.shared_path(settings.catalog.paths.cpcd_labels), sep="\t", dtype=str)
    queries = labels["search_query"].dropna().drop_duplicates().head(40).tolist()
    assert served.version == vectors["table_version"]
    for query in onnx.encode(queries):
        for options in ({}, {"exact": True}, {"where": "type NOT IN ('artist')"}):
            assert _search(served, query, 30, config, **options) == lancedb_search(query, 30, **options), options
