"""The query encoder serving uses: the index's sentence encoder as one ONNX graph.

A query encoder directory (written by ``ltrr_core.index.onnx_export``, carried by every index
build and bundle)::

    model.onnx       MiniLM with mean pooling and L2 normalisation inside the graph; int8
                     (dynamic quantisation, per-channel weights, fused attention) or fp32
    tokenizer.json   the model's own tokenizer, run by the ``tokenizers`` library
    encoder.json     QueryEncoderSpec: the source model, precision, checksum, and how closely
                     its vectors agree with the torch model's on sample texts (the export gate)

Serving needs onnxruntime, tokenizers and numpy only -- neither torch nor sentence-transformers
is imported to answer a query. Document vectors stay the torch model's fp32 vectors: the export
gate proves the query vectors live in the same space, so nothing is re-embedded.

One intra-op thread per session (``runtime.query_encoder_threads``): a second thread stalls
when the other core is busy serving. Real queries repeat, so single-query vectors are kept in
a bounded LRU cache (``runtime.query_cache_size`` texts).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel
from tokenizers import Tokenizer

from ..durable import sha256_file

ort.disable_telemetry_events()  # offline and quiet, like every library here (ltrr_core.env)

SPEC_FILE = "encoder.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class TextEncoder(Protocol):
    """What the semantic strategy needs of an encoder: L2-normalised float32 rows, shape (n, dim)."""

    dim: int

    @property
    def name(self) -> str: ...

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray: ...


class QueryEncoderError(ValueError):
    """A query encoder directory that must not serve; the message names the file and the rule."""


class Agreement(BaseModel):
    """Cosine between this encoder's vectors and the torch model's on the same texts."""

    n_texts: int
    mean_cosine: float
    min_cosine: float


class QueryEncoderSpec(BaseModel):
    model: str  # the embedding model (config) whose document vectors it matches
    dim: int
    precision: Literal["int8", "fp32"]
    max_length: int
    model_sha256: str
    agreement: Agreement
    export_seconds: float


def read_spec(directory: Path) -> QueryEncoderSpec:
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        raise QueryEncoderError(f"{directory}: no {SPEC_FILE}; not a query encoder directory")
    return QueryEncoderSpec.model_validate_json(path.read_text(encoding="utf-8"))


def onnx_session(model: Path, threads: int) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads and every graph optimisation."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def unpadded_tokenizer(directory: Path, spec: QueryEncoderSpec) -> Tokenizer:
    """The export's tokenizer, truncating at the model's length and padding nothing (callers pad)."""
    tokenizer = Tokenizer.from_file(str(Path(directory) / TOKENIZER_FILE))
    tokenizer.enable_truncation(spec.max_length)
    tokenizer.no_padding()
    return tokenizer


class OnnxQueryEncoder:
    """Encodes with onnxruntime, one text per run, through the LRU cache."""

    def __init__(self, directory: Path, threads: int = 1, cache_size: int = 4096, verify: bool = True):
        directory = Path(directory)
        self.spec = read_spec(directory)
        model = directory / MODEL_FILE
        if verify and sha256_file(model) != self.spec.model_sha256:
            raise QueryEncoderError(f"{model} does not match the checksum in {SPEC_FILE}")
        self._session = onnx_session(model, threads)
        self._tokenizer = unpadded_tokenizer(directory, self.spec)
        self.dim = self.spec.dim
        self._cached = lru_cache(maxsize=cache_size)(self._encode_one) if cache_size > 0 else self._encode_one

    @property
    def name(self) -> str:
        return self.spec.model

    def cache_info(self) -> dict[str, int]:
        info = getattr(self._cached, "cache_info", None)
        if info is None:
            return {"hits": 0, "misses": 0, "size": 0}
        stats = info()
        return {"hits": stats.hits, "misses": stats.misses, "size": stats.currsize}

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # One text per run, as a request is encoded: int8 activations are quantised per run, so a
        # batch-mate (or its padding) would change a vector.
        return np.stack([self._cached(text) for text in texts])

    def _encode_one(self, text: str) -> np.ndarray:
        ids = np.asarray([self._tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        (vectors,) = self._session.run(None, feeds)
        vector = np.asarray(vectors[0], dtype=np.float32)
        vector.setflags(write=False)  # shared by every request that asks for this text
        return vector
