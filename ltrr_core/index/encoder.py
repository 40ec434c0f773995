"""The sentence encoder (all-MiniLM-L6-v2 by default), loaded offline from a local path."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..config import EmbeddingConfig, RuntimeConfig
from ..progress import track
from .query_encoder import (
    MODEL_FILE,
    SPEC_FILE,
    OnnxQueryEncoder,
    QueryEncoderError,
    TextEncoder,
    onnx_session,
    read_spec,
    unpadded_tokenizer,
)

_log = logging.getLogger("ltrr.encoder")


def resolve_model_path(model: str) -> Path:
    """``package:NAME`` -> the model directory a PyPI package carries; else a filesystem path."""
    if model.startswith("package:"):
        package = importlib.import_module(model.split(":", 1)[1])
        return Path(package.get_model_path())
    path = Path(model).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"embedding model {model!r} is neither 'package:<module>' nor an existing directory; "
            "models cannot be downloaded here"
        )
    return path


# transformers initialises its lazy modules on first import, which is not thread-safe: an index
# build that loads the encoder in one task thread while another imports the ONNX exporter got
# "cannot import name 'AutoConfig' from 'transformers'". Whoever first imports the model stack
# holds this lock.
MODEL_IMPORT_LOCK = threading.Lock()


class Encoder:
    """Batch and single-query encoding with L2-normalised float32 output, shape (n, dim)."""

    def __init__(self, config: EmbeddingConfig):
        # Deferred: serving imports this module and never the torch model stack.
        with MODEL_IMPORT_LOCK:
            import torch
            from sentence_transformers import SentenceTransformer

        torch.set_num_threads(config.torch_threads)
        self.config = config
        self.model_path = resolve_model_path(config.model)
        self._model = SentenceTransformer(str(self.model_path), device="cpu")
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"{self.model_path}: the model does not declare its embedding dimension")
        self.dim = int(dim)

    @property
    def name(self) -> str:
        return self.config.model

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Encode in chunks; with ``show_progress`` a bar on a terminal, else a line per tenth (``ltrr_core.progress``)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunk = self.config.batch_size * 16
        starts: Iterable[int] = range(0, len(texts), chunk)
        if show_progress and len(texts) > chunk:
            starts = track(range(0, len(texts), chunk), f"encoding {len(texts)} texts ({chunk} per step)")
        parts = []
        for start in starts:
            part = self._model.encode(
                texts[start : start + chunk],
                batch_size=self.config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            parts.append(part.astype(np.float32, copy=False))
        return np.concatenate(parts)


class OnnxDocumentEncoder:
    """Batch encoding with an fp32 ONNX export (``index.onnx_export``): texts sorted by token
    length, padded per batch of ``batch_size``, one session with ``threads`` intra-op threads.
    Padding is masked out of the pooling, so a text's vector does not depend on its batch-mates:
    the torch model's vectors (the export gate and tests/test_query_encoder.py measure it)."""

    def __init__(self, directory: Path, threads: int, batch_size: int):
        directory = Path(directory)
        self.spec = read_spec(directory)
        if self.spec.precision != "fp32":
            raise QueryEncoderError(
                f"{directory}: a document encoder must be fp32 (int8 activations are quantised per "
                f"batch, so a vector would depend on its batch-mates); this export is {self.spec.precision}"
            )
        self._session = onnx_session(directory / MODEL_FILE, threads)
        self._tokenizer = unpadded_tokenizer(directory, self.spec)
        self.batch_size = batch_size
        self.dim = self.spec.dim

    @property
    def name(self) -> str:
        return self.spec.model

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """L2-normalised float32 rows in the order of ``texts``; progress as ``Encoder.encode``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]
        order = np.argsort(np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids)), kind="stable")
        chunk = self.batch_size * 64
        starts: Iterable[int] = range(0, len(order), chunk)
        if show_progress and len(texts) > chunk:
            starts = track(range(0, len(order), chunk), f"encoding {len(texts)} texts ({chunk} per step)")
        for start in starts:
            for first in range(start, min(start + chunk, len(order)), self.batch_size):
                batch = order[first : first + self.batch_size]
                out[batch] = self._run([ids[i] for i in batch])
        return out

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        (vectors,) = self._session.run(None, feeds)
        return np.asarray(vectors, dtype=np.float32)


_SHARED_LOCK = threading.Lock()
_SHARED: dict[str, Encoder] = {}


def shared_encoder(config: EmbeddingConfig) -> Encoder:
    """One encoder per configuration in a process: the runtime's hot reloads and a second
    service loaded beside the first (promotion's smoke gate) reuse the loaded model instead of
    loading the same weights again (read-only at inference)."""
    key = config.model_dump_json()
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Encoder(config)
        return _SHARED[key]


_SHARED_ONNX: dict[tuple[str, int, int], OnnxQueryEncoder] = {}


def serving_encoder(embedding: EmbeddingConfig, runtime: RuntimeConfig, directory: Path | None) -> TextEncoder:
    """What serving encodes queries with: the ONNX query encoder in ``directory`` (an index
    build's or a bundle's) unless ``embedding.query_encoder`` is ``torch``; the torch model for
    a build or bundle made before query encoders existed. One per model checksum in a process,
    so hot reloads and a second service (the smoke gate) share it and its cache."""
    if embedding.query_encoder == "torch":
        return shared_encoder(embedding)
    if directory is None or not (Path(directory) / SPEC_FILE).is_file():
        _log.warning("no query encoder in %s; encoding queries with the torch model", directory)
        return shared_encoder(embedding)
    spec = read_spec(Path(directory))
    if spec.model != embedding.model:
        raise QueryEncoderError(
            f"{directory}: query encoder exported from {spec.model!r}, this config's "
            f"document vectors are {embedding.model!r}"
        )
    key = (spec.model_sha256, runtime.query_encoder_threads, runtime.query_cache_size)
    with _SHARED_LOCK:
        if key not in _SHARED_ONNX:
            _SHARED_ONNX[key] = OnnxQueryEncoder(
                Path(directory), runtime.query_encoder_threads, runtime.query_cache_size
            )
        return _SHARED_ONNX[key]
