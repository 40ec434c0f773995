"""Export the sentence encoder to ONNX (build time only): the query encoder serving uses and the
document encoder index builds embed the catalog with.

torch -> ONNX (the transformer with mean pooling and L2 normalisation, dynamic batch and
length) -> onnxruntime's transformer optimiser (fused attention, LayerNorm, GELU) -> dynamic
int8 quantisation with per-channel weights (``embedding.query_encoder: onnx_int8``), or the
optimised fp32 graph (``onnx_fp32``, also ``embedding.document_encoder``).

The export gate: the exported encoder and the torch model encode the same sample texts (short,
query-like: entity titles and "title artist" lines of the catalog being indexed); the mean
cosine must reach the caller's floor (``embedding.query_min_cosine`` for a query encoder,
``embedding.document_min_cosine`` for a document encoder), else the export is refused and
nothing is published. Exports are cached under ``embedding.export_cache_dir`` (default
``<data_dir>/indexes/query-encoders``) by key -- the model weights' checksum, the precision, the
gate and the exporting library versions -- so a nightly index build copies the cached export
instead of exporting again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
import warnings
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Literal

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from transformers import AutoConfig, AutoModel

from ..config import EmbeddingConfig
from ..durable import sha256_file, staged_directory, write_json_atomic
from .encoder import Encoder, resolve_model_path
from .query_encoder import (
    INPUTS,
    MODEL_FILE,
    SPEC_FILE,
    TOKENIZER_FILE,
    Agreement,
    OnnxQueryEncoder,
    QueryEncoderError,
    QueryEncoderSpec,
    read_spec,
)

OPSET = 17
Precision = Literal["int8", "fp32"]
QUERY_GATE, DOCUMENT_GATE = "query_min_cosine", "document_min_cosine"  # EmbeddingConfig fields
_EXPORT_LOCK = threading.Lock()


class _PooledEncoder(torch.nn.Module):
    """The transformer, mean pooling over the attention mask, L2 normalisation: the
    sentence-transformers pipeline of all-MiniLM-L6-v2 as one graph."""

    def __init__(self, transformer: torch.nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _precision(kind: str, setting: str) -> Precision:
    if kind == "onnx_int8":
        return "int8"
    if kind == "onnx_fp32":
        return "fp32"
    raise QueryEncoderError(f"{setting} is {kind!r}: there is no ONNX export to build")


def _check_pooling(model_path: Path) -> None:
    pooling = model_path / "1_Pooling" / "config.json"
    if pooling.is_file():
        modes = json.loads(pooling.read_text(encoding="utf-8"))
        if not modes.get("pooling_mode_mean_tokens") or any(
            modes.get(k)
            for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
        ):
            raise QueryEncoderError(f"{pooling}: only mean pooling is exported, found {modes}")


def _max_length(model_path: Path) -> int:
    config = model_path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text(encoding="utf-8")).get("max_seq_length", 256))
    return 256


def _weights(model_path: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_path / name).is_file():
            return model_path / name
    raise QueryEncoderError(f"{model_path}: no model.safetensors or pytorch_model.bin to export")


@lru_cache(maxsize=8)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """The checksum of a file, computed once per (path, modification time, size) in a process:
    every encoding partition asks for the export key, and the weights are ~90 MB."""
    return sha256_file(Path(path))


def export_key(config: EmbeddingConfig, precision: Precision, gate: str) -> str:
    """What an export is a function of: the weights, the precision, the gate it must pass (a query
    encoder's floor is lower than a document encoder's, so the two never share an export), the
    exporting libraries."""
    weights = _weights(resolve_model_path(config.model))
    stat = weights.stat()
    payload = {
        "weights": _file_sha256(str(weights), stat.st_mtime_ns, stat.st_size),
        "precision": precision,
        "gate": gate,
        "opset": OPSET,
        "versions": {name: package_version(name) for name in ("torch", "onnx", "onnxruntime", "transformers")},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _export_graph(model_path: Path, out: Path, threads: int) -> None:
    torch.set_num_threads(threads)
    transformer = AutoModel.from_pretrained(str(model_path)).eval()
    example = torch.ones((2, 8), dtype=torch.long)
    # The TorchScript exporter's tracer warnings concern shapes the graph keeps dynamic (batch, tokens).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _PooledEncoder(transformer),
            (example, torch.ones_like(example), torch.zeros_like(example)),
            str(out),
            input_names=list(INPUTS),
            output_names=["embedding"],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in INPUTS}, "embedding": {0: "batch"}},
        )


def _optimise(source: Path, out: Path, model_path: Path, precision: str, scratch: Path) -> None:
    hf = AutoConfig.from_pretrained(str(model_path))
    optimised = optimize_model(
        str(source), model_type="bert", num_heads=int(hf.num_attention_heads), hidden_size=int(hf.hidden_size)
    )
    if precision == "fp32":
        optimised.save_model_to_file(str(out))
        return
    fused = scratch / "fused.onnx"
    optimised.save_model_to_file(str(fused))
    # Shape inference does not type the fused operators' outputs; their tensors are float32. The
    # quantiser's advice (pre-processing) is for static quantisation: kept off the run logs.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(fused),
            str(out),
            per_channel=True,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def measure_agreement(encoder: OnnxQueryEncoder, reference: Encoder, texts: list[str]) -> Agreement:
    ours = encoder.encode(texts)
    theirs = reference.encode(texts)
    cosine = (ours * theirs).sum(axis=1)
    return Agreement(
        n_texts=len(texts), mean_cosine=round(float(cosine.mean()), 5), min_cosine=round(float(cosine.min()), 5)
    )


def export_query_encoder(config: EmbeddingConfig, target: Path, sample: list[str]) -> QueryEncoderSpec:
    """The query encoder ``embedding.query_encoder`` names, gated at ``embedding.query_min_cosine``."""
    precision = _precision(config.query_encoder, "embedding.query_encoder")
    return export_encoder(config, precision, QUERY_GATE, target, sample)


def export_encoder(
    config: EmbeddingConfig, precision: Precision, gate: str, target: Path, sample: list[str]
) -> QueryEncoderSpec:
    """Export, gate on agreement with the torch model over ``sample`` (mean cosine at least
    the config's ``gate`` setting: ``query_min_cosine`` or ``document_min_cosine``), publish at
    ``target`` (atomically; nothing is published when the gate refuses)."""
    min_cosine = float(getattr(config, gate))
    if not sample:
        raise QueryEncoderError("the export gate needs sample texts; the catalog gave none")
    started = time.perf_counter()
    model_path = resolve_model_path(config.model)
    _check_pooling(model_path)
    with staged_directory(Path(target)) as staging, tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        raw = Path(scratch) / "raw.onnx"
        _export_graph(model_path, raw, config.torch_threads)
        _optimise(raw, staging / MODEL_FILE, model_path, precision, Path(scratch))
        shutil.copy2(model_path / TOKENIZER_FILE, staging / TOKENIZER_FILE)
        reference = Encoder(config)
        probe = QueryEncoderSpec(
            model=config.model,
            dim=reference.dim,
            precision=precision,
            max_length=_max_length(model_path),
            model_sha256=sha256_file(staging / MODEL_FILE),
            agreement=Agreement(n_texts=0, mean_cosine=0.0, min_cosine=0.0),
            export_seconds=0.0,
        )
        write_json_atomic(staging / SPEC_FILE, probe.model_dump(mode="json"))
        agreement = measure_agreement(
            OnnxQueryEncoder(staging, threads=config.torch_threads, cache_size=0), reference, sample
        )
        if agreement.mean_cosine < min_cosine:
            raise QueryEncoderError(
                f"onnx_{precision} export of {config.model}: mean cosine to the torch model "
                f"{agreement.mean_cosine} on {agreement.n_texts} sample texts is below "
                f"embedding.{gate} {min_cosine}; not published"
            )
        spec = probe.model_copy(
            update={"agreement": agreement, "export_seconds": round(time.perf_counter() - started, 2)}
        )
        write_json_atomic(staging / SPEC_FILE, spec.model_dump(mode="json"))
    return spec


def cached_query_encoder(config: EmbeddingConfig, cache_root: Path, sample: list[str]) -> tuple[Path, bool]:
    """The query encoder ``embedding.query_encoder`` names (see ``cached_export``)."""
    precision = _precision(config.query_encoder, "embedding.query_encoder")
    return cached_export(config, precision, QUERY_GATE, cache_root, sample)


def cached_document_encoder(config: EmbeddingConfig, cache_root: Path, sample: list[str]) -> tuple[Path, bool]:
    """The document encoder ``embedding.document_encoder`` names (see ``cached_export``)."""
    precision = _precision(config.document_encoder, "embedding.document_encoder")
    return cached_export(config, precision, DOCUMENT_GATE, cache_root, sample)


def cached_export(
    config: EmbeddingConfig, precision: Precision, gate: str, cache_root: Path, sample: list[str]
) -> tuple[Path, bool]:
    """The export of ``config`` at ``precision`` under ``cache_root`` (exported now, gated by
    ``gate`` on the query-like ``sample`` texts, if missing): (directory, reused). Exports run one
    at a time in a process (torch's exporter keeps process-wide state, and an index build exports
    its query and document encoders from two tasks); two processes exporting one key at once:
    the second finds the first's."""
    directory = Path(cache_root) / export_key(config, precision, gate)
    with _EXPORT_LOCK:
        if not (directory / SPEC_FILE).is_file():
            try:
                export_encoder(config, precision, gate, directory, sample)
                return directory, False
            except OSError:  # FileExistsError, or the rename onto a directory another process published
                if not (directory / SPEC_FILE).is_file():
                    raise
    agreement, min_cosine = read_spec(directory).agreement, float(getattr(config, gate))
    if agreement.mean_cosine < min_cosine:
        raise QueryEncoderError(
            f"{directory}: its mean cosine to the torch model {agreement.mean_cosine} is below "
            f"embedding.{gate} {min_cosine}; not used"
        )
    return directory, True
