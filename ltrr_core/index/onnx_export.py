"""Export the sentence encoder to the ONNX query encoder serving uses (build time only).

torch -> ONNX (the transformer with mean pooling and L2 normalisation, dynamic batch and
length) -> onnxruntime's transformer optimiser (fused attention, LayerNorm, GELU) -> dynamic
int8 quantisation with per-channel weights (``embedding.query_encoder: onnx_int8``), or the
optimised fp32 graph (``onnx_fp32``).

The export gate: the exported encoder and the torch model encode the same sample texts (short,
query-like: entity titles and "title artist" lines of the catalog being indexed); the mean
cosine must reach ``embedding.query_min_cosine``, else the export is refused and nothing is
published. Exports are cached under ``<data_dir>/indexes/query-encoders/<key>``, the key being
the model weights' checksum, the precision and the exporting library versions, so a nightly
index build copies the cached export instead of exporting again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import onnx
import pandas as pd
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from transformers import AutoConfig, AutoModel

from .. import schema as S
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
)

OPSET = 17


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


def _precision(config: EmbeddingConfig) -> str:
    if config.query_encoder == "torch":
        raise QueryEncoderError("embedding.query_encoder is 'torch': there is no ONNX export to build")
    return config.query_encoder.removeprefix("onnx_")


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


def export_key(config: EmbeddingConfig) -> str:
    """What an export is a function of: the weights, the precision, the exporting libraries."""
    model_path = resolve_model_path(config.model)
    payload = {
        "weights": sha256_file(_weights(model_path)),
        "precision": _precision(config),
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
    """Export, gate on agreement with the torch model over ``sample``, publish at ``target``
    (atomically; nothing is published when the gate refuses)."""
    if not sample:
        raise QueryEncoderError("the export gate needs sample texts; the catalog gave none")
    started = time.perf_counter()
    model_path = resolve_model_path(config.model)
    _check_pooling(model_path)
    precision = _precision(config)
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
        if agreement.mean_cosine < config.query_min_cosine:
            raise QueryEncoderError(
                f"{config.query_encoder} export of {config.model}: mean cosine to the torch model "
                f"{agreement.mean_cosine} on {agreement.n_texts} sample texts is below "
                f"embedding.query_min_cosine {config.query_min_cosine}; not published"
            )
        spec = probe.model_copy(
            update={"agreement": agreement, "export_seconds": round(time.perf_counter() - started, 2)}
        )
        write_json_atomic(staging / SPEC_FILE, spec.model_dump(mode="json"))
    return spec


def cached_query_encoder(config: EmbeddingConfig, cache_root: Path, entities: pd.DataFrame) -> tuple[Path, bool]:
    """The export for ``config`` under ``cache_root`` (exported now, gated on texts of
    ``entities``, if missing): (directory, reused)."""
    directory = Path(cache_root) / export_key(config)
    if (directory / SPEC_FILE).is_file():
        return directory, True
    export_query_encoder(config, directory, sample_texts(entities, config.query_agreement_sample))
    return directory, False


def _first_artist(artists: Any) -> str:
    return str(next(iter(artists), "")) if artists is not None else ""


def sample_texts(entities: pd.DataFrame, n: int) -> list[str]:
    """Query-like texts for the export gate from entities (``title``, ``artists``): every k-th
    title, and "title artist" for half of them."""
    titles = entities[S.TITLE].astype(str).tolist()
    artists = [_first_artist(a) for a in entities[S.ARTISTS]]
    step = max(1, len(titles) // max(1, n))
    picked = list(range(0, len(titles), step))[:n]
    texts = [titles[i] if j % 2 == 0 or not artists[i] else f"{titles[i]} {artists[i]}" for j, i in enumerate(picked)]
    return [t for t in texts if t and t.strip()]
