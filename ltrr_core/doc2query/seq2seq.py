"""doc2query with a seq2seq model (transformers): any doc2query-T5-style checkpoint directory.

Batch generation with sampling parameters from config; each returned sequence is scored by
its mean token probability under the model (exp of the mean log-probability), a number in
(0, 1] that the Doc2Query-- filter and the memory prior can use. No weights are downloaded:
``model_path`` must be a local directory (a fine-tuned doc2query checkpoint in production; a
tiny randomly initialised T5 in the tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import schema as S
from ..catalog.understanding import entity_text
from ..config import Seq2SeqConfig
from .base import COLUMNS, empty


class Seq2SeqGenerator:
    name = "seq2seq"

    def __init__(self, config: Seq2SeqConfig):
        if not config.model_path:
            raise ValueError("doc2query.seq2seq.model_path is not set; the seq2seq generator needs a local checkpoint")
        path = Path(config.model_path)
        if not path.is_dir():
            raise FileNotFoundError(f"doc2query checkpoint {path} is not a directory")
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.config = config
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(str(path), local_files_only=True).eval()

    def generate(self, entities: pd.DataFrame) -> pd.DataFrame:
        config, torch = self.config, self.torch
        texts = [entity_text(t, a, al) for t, a, al in zip(entities[S.TITLE], entities[S.ARTISTS], entities[S.ALBUM])]
        ids = entities[S.ID].tolist()
        rows: list[tuple[str, str, float, str]] = []
        torch.manual_seed(config.seed)
        for start in range(0, len(texts), config.batch_size):
            batch = self.tokenizer(
                texts[start : start + config.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=config.max_input_tokens,
            )
            with torch.no_grad():
                out = self.model.generate(
                    **batch,
                    do_sample=config.do_sample,
                    top_k=config.top_k,
                    top_p=config.top_p,
                    temperature=config.temperature,
                    max_new_tokens=config.max_new_tokens,
                    num_return_sequences=config.num_return_sequences,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
                transition = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            generated = out.sequences[:, 1:]  # drop the decoder start token
            mask = generated != self.tokenizer.pad_token_id
            log_probs = np.where(mask.numpy(), transition.numpy(), 0.0)
            lengths = np.maximum(mask.numpy().sum(axis=1), 1)
            scores = np.exp(log_probs.sum(axis=1) / lengths)
            decoded = self.tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
            for i, (query, score) in enumerate(zip(decoded, scores)):
                entity = ids[start + i // config.num_return_sequences]
                if query.strip():
                    rows.append((entity, query.strip(), float(score), self.name))
        return pd.DataFrame(rows, columns=COLUMNS) if rows else empty()
