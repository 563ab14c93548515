"""A talking face for the demo corpus: the scikit-image astronaut photo, animated by image warps.

Every frame is one ``cv2.remap`` of the photograph ``skimage.data.astronaut()`` (Eileen Collins,
NASA, public domain). The sampling grid is the speaker's crop (zoom, offset, mirror), moved by a
small head motion, plus a weighted sum of smooth displacement fields ("action units") placed on
known landmarks of that photo: the jaw (mouth opening, driven by the speech envelope), the mouth
corners (smile / frown, driven by emotion), one corner (a sarcastic smirk), the inner brows (raised
when sad), the brows (lowered and drawn together when angry) and the eyelids (narrowed when angry,
a little when smiling). Where the lips part, the stretched gap is shaded towards a dark mouth
interior. One remap per frame keeps rendering near a millisecond per 256x256 frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

# Landmarks of skimage.data.astronaut() (512x512 RGB), in source pixels (x, y). Found once with
# MediaPipe Face Mesh 0.10.21 (static_image_mode=True, refine_landmarks=True) on the unmodified
# photo; the numbers are the mesh indices. Her resting face already smiles with parted lips.
MOUTH_LEFT = (201.8, 139.2)  # 61  (left in the image)
MOUTH_RIGHT = (245.0, 141.0)  # 291
LIP_GAP_Y = 146.7  # midway between inner lips 13 (223.5, 143.2) and 14 (223.0, 150.1)
MOUTH_CENTER_X = 223.2
CHIN = (221.3, 177.4)  # 152
BROW_INNER_LEFT = (215.9, 89.8)  # 107
BROW_INNER_RIGHT = (235.8, 91.5)  # 336
BROW_MID_LEFT = (198.8, 86.9)  # 105
BROW_MID_RIGHT = (253.0, 90.7)  # 334
EYE_LEFT = (204.2, 101.0)  # centre of 33/133 (corners) and 159/145 (lids); aperture ~6.7 px
EYE_RIGHT = (246.4, 103.2)  # centre of 362/263 and 386/374
FACE_CENTER = (225.0, 126.0)  # centre of the mesh's bounding box (179, 71)-(271, 177)

ACTIONS: tuple[str, ...] = ("jaw", "smile", "smirk", "inner_up", "lower", "squint")
MOUTH_INTERIOR_RGB = np.array([70.0, 25.0, 30.0], dtype=np.float32)
_JAW_EDGE_PX = 3.0  # softness of the lip-gap step of the jaw field, source pixels


@lru_cache(maxsize=1)
def astronaut_rgb() -> np.ndarray:
    """The source photograph, 512x512x3 uint8 RGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@dataclass(frozen=True)
class FaceStyle:
    """How one speaker looks: crop, mirror, colour tint and resting expression."""

    crop_side: float = 210.0  # side of the square crop in source pixels (zoom)
    offset_x: float = 0.0  # crop centre offset from FACE_CENTER, source pixels
    offset_y: float = 0.0
    mirror: bool = False
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel colour gains
    rest_smile: float = 0.0  # speaker's resting mouth-corner offset (px), personal variation
    motion: float = 1.0  # head-motion scale


_STYLE_TABLE: tuple[FaceStyle, ...] = (
    FaceStyle(210.0, 0.0, 2.0, False, (1.00, 1.00, 1.00), 0.0, 1.0),
    FaceStyle(196.0, -6.0, 4.0, True, (1.10, 0.97, 0.85), 1.5, 0.8),
    FaceStyle(224.0, 5.0, -2.0, False, (0.86, 0.98, 1.12), -1.5, 1.3),
    FaceStyle(204.0, 3.0, 6.0, True, (0.95, 1.08, 0.92), 0.5, 1.1),
    FaceStyle(216.0, -3.0, 0.0, True, (1.06, 0.92, 1.06), -0.5, 0.9),
    FaceStyle(200.0, 4.0, 3.0, False, (0.92, 0.92, 0.92), 1.0, 1.2),
)


def speaker_style(index: int) -> FaceStyle:
    """The look of speaker `index` (0-based): a fixed table, then seeded variations beyond it."""
    if index < len(_STYLE_TABLE):
        return _STYLE_TABLE[index]
    rng = np.random.default_rng(1000 + index)
    return FaceStyle(
        crop_side=float(rng.uniform(195, 225)), offset_x=float(rng.uniform(-6, 6)),
        offset_y=float(rng.uniform(-2, 6)), mirror=bool(index % 2),
        gains=tuple(float(g) for g in rng.uniform(0.85, 1.12, 3)),  # type: ignore[arg-type]
        rest_smile=float(rng.uniform(-1.5, 1.5)), motion=float(rng.uniform(0.8, 1.3)),
    )


@dataclass
class FaceTrack:
    """Per-frame action weights (source pixels) and head pose; every array has one value a frame."""

    jaw: np.ndarray
    smile: np.ndarray
    smirk: np.ndarray
    inner_up: np.ndarray
    lower: np.ndarray
    squint: np.ndarray
    rotation_deg: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray

    def __len__(self) -> int:
        return len(self.jaw)


class FaceRenderer:
    """Renders frames of one speaker at `size` x `size` pixels from a `FaceTrack`."""

    def __init__(self, style: FaceStyle, size: int = 256) -> None:
        self.style, self.size = style, size
        src = astronaut_rgb().astype(np.float32) * np.asarray(style.gains, dtype=np.float32)
        self._src = np.clip(src, 0, 255).astype(np.uint8)
        u, v = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
        if style.mirror:
            u = size - 1 - u
        step = style.crop_side / size
        cx, cy = FACE_CENTER[0] + style.offset_x, FACE_CENTER[1] + style.offset_y
        self._bx = (cx + (u + 0.5 - size / 2) * step - 0.5).astype(np.float32)
        self._by = (cy + (v + 0.5 - size / 2) * step - 0.5).astype(np.float32)
        self._fields = _action_fields(self._bx, self._by)
        jaw_dy = self._fields["jaw"][1]
        # d(jaw field)/d(source y): where it is large, an open jaw stretches the lip gap. Only
        # the part between the mouth corners is shaded as the mouth interior.
        half_width = 0.5 * (MOUTH_RIGHT[0] - MOUTH_LEFT[0])
        between = np.clip(1.0 - ((self._bx - MOUTH_CENTER_X) / (0.85 * half_width)) ** 2, 0.0, 1.0)
        self._jaw_slope = np.gradient(jaw_dy, axis=0) / step * np.sqrt(between)
        rows = np.flatnonzero(self._jaw_slope.max(axis=1) > 1e-3)
        self._gap_rows = slice(int(rows.min()), int(rows.max()) + 1) if rows.size else slice(0, 0)

    def render(self, track: FaceTrack, i: int) -> np.ndarray:
        """Frame `i` of `track` as a size x size x 3 uint8 RGB image."""
        theta = np.deg2rad(float(track.rotation_deg[i]))
        c, s = np.cos(theta), np.sin(theta)
        fx, fy = FACE_CENTER
        x0, y0 = self._bx - fx, self._by - fy
        map_x = fx + c * x0 - s * y0 + float(track.shift_x[i])
        map_y = fy + s * x0 + c * y0 + float(track.shift_y[i])
        for name in ACTIONS:
            weight = float(getattr(track, name)[i])
            if weight != 0.0:
                dx, dy = self._fields[name]
                if dx is not None:
                    map_x = map_x - weight * dx
                map_y = map_y - weight * dy
        frame = cv2.remap(self._src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        jaw = float(track.jaw[i])
        if jaw > 0 and self._gap_rows.stop > self._gap_rows.start:
            rows = self._gap_rows
            alpha = np.clip((jaw * self._jaw_slope[rows] - 0.25) * 1.6, 0.0, 0.85)[..., None]
            roi = frame[rows].astype(np.float32)
            frame[rows] = (roi * (1 - alpha) + MOUTH_INTERIOR_RGB * alpha).astype(np.uint8)
        return frame


def _action_fields(bx: np.ndarray, by: np.ndarray) -> dict[str, tuple[np.ndarray | None, np.ndarray]]:
    """Unit displacement fields (dx, dy) per action, on the speaker's base sampling grid.

    A weight w moves the content near the landmark by about w source pixels in the field's
    direction (backward mapping: output samples the photo at grid - w * field).
    """
    def bump(point: tuple[float, float], sigma: float) -> np.ndarray:
        return np.exp(-((bx - point[0]) ** 2 + (by - point[1]) ** 2) / (2 * sigma**2)).astype(np.float32)

    width = MOUTH_RIGHT[0] - MOUTH_LEFT[0]
    # Jaw: everything below the lip gap moves down, fading out sideways and below the chin.
    below = _sigmoid((by - LIP_GAP_Y) / _JAW_EDGE_PX)
    across = np.exp(-((bx - MOUTH_CENTER_X) ** 2) / (2 * (0.62 * width) ** 2))
    fade = np.exp(-np.maximum(0.0, by - (CHIN[1] - 14.0)) ** 2 / (2 * 18.0**2))
    jaw = (below * across * fade).astype(np.float32)
    left, right = bump(MOUTH_LEFT, 8.0), bump(MOUTH_RIGHT, 8.0)
    # Brow fields fade out above the upper eyelids (about 11 px below the brows), so the brows
    # move relative to the eyes instead of dragging them along.
    brow_y = 0.5 * (BROW_INNER_LEFT[1] + BROW_INNER_RIGHT[1])
    above_eyes = _sigmoid((brow_y + 4.0 - by) / 1.5)
    inner = (bump(BROW_INNER_LEFT, 9.0) + bump(BROW_INNER_RIGHT, 9.0)) * above_eyes
    brow_l = (bump(BROW_INNER_LEFT, 10.0) + 0.7 * bump(BROW_MID_LEFT, 10.0)) * above_eyes
    brow_r = (bump(BROW_INNER_RIGHT, 10.0) + 0.7 * bump(BROW_MID_RIGHT, 10.0)) * above_eyes
    # Squint: content near each eye is pulled towards the eye's horizontal midline, so a weight
    # k narrows the lid aperture by about a factor (1 - k).
    squint = np.zeros_like(bx)
    for eye in (EYE_LEFT, EYE_RIGHT):
        squint -= (by - eye[1]) * np.exp(-(((bx - eye[0]) / 9.0) ** 2 + ((by - eye[1]) / 6.0) ** 2) / 2)
    return {
        "squint": (None, squint.astype(np.float32)),
        "jaw": (None, jaw),
        "smile": (-0.35 * left + 0.35 * right, -(left + right)),  # corners up and outwards
        "smirk": (0.3 * right, -right),  # one corner only
        "inner_up": (None, -inner),  # inner brows up (sadness)
        "lower": (0.6 * brow_l - 0.6 * brow_r, brow_l + brow_r),  # brows down and together (anger)
    }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def speech_envelope(samples: np.ndarray, sample_rate: int, fps: int, n_frames: int) -> np.ndarray:
    """RMS of the audio in a window centred on each video frame (length `n_frames`)."""
    x = samples.astype(np.float64) / 32768.0
    hop = sample_rate / fps
    half = int(round(hop))  # window = two frame periods
    out = np.zeros(n_frames)
    for i in range(n_frames):
        centre = int(round((i + 0.5) * hop))
        seg = x[max(0, centre - half): centre + half]
        out[i] = np.sqrt(np.mean(seg**2)) if seg.size else 0.0
    return out


# Action targets at full expressivity, in source pixels, relative to the neutral face.
EMOTION_TARGETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"smile": 7.0, "squint": 0.12},
    "sad": {"smile": -5.0, "inner_up": 6.5},
    "angry": {"smile": -2.0, "lower": 8.0, "squint": 0.4},
}
# Per-utterance standard deviation of each action's offset, independent of the emotion.
FACE_NOISE: dict[str, float] = {"smile": 1.8, "inner_up": 1.6, "lower": 1.8, "squint": 0.07}
NEUTRAL_SMILE = -4.0  # the photo smiles at rest; this pulls the corners to a neutral mouth
JAW_REST, JAW_OPEN = -4.0, 6.0  # lips pressed (silence) .. open at the utterance's loud peaks
# Relative change of the mouth opening at full expressivity (sad mumbles, angry opens wide).
JAW_GAIN = {"neutral": 0.0, "happy": 0.05, "sad": -0.25, "angry": 0.1}
# Relative change of head motion at full expressivity; sad also lowers the head (px).
MOTION_GAIN = {"neutral": 0.0, "happy": 0.1, "sad": -0.4, "angry": 0.5}
HEAD_DOWN_PX = 3.0


def track_truth(track: FaceTrack, style: FaceStyle, fps: int) -> dict[str, object]:
    """The actions a rendered video really shows, per frame at `fps`: what landmark-based action
    units are scored against. Source pixels relative to the speaker's neutral face (the smile
    without the resting offset), squint as the share of the eye closed, roll in degrees."""
    rest = NEUTRAL_SMILE + style.rest_smile

    def rounded(values: np.ndarray) -> list[float]:
        return [round(float(v), 3) for v in values]

    return {"fps": fps, "jaw": rounded(track.jaw), "smile": rounded(track.smile - rest),
            "smirk": rounded(track.smirk), "inner_up": rounded(track.inner_up),
            "lower": rounded(track.lower), "squint": rounded(track.squint),
            "roll": rounded(track.rotation_deg)}


def make_track(
    emotion: str, expressivity: float, envelope: np.ndarray, fps: int, style: FaceStyle,
    rng: np.random.Generator, smirk: float = 0.0,
) -> FaceTrack:
    """Per-frame actions: the jaw follows the envelope, the rest follows the emotion.

    `expressivity` in [0, 1] scales how much of the emotion reaches the face (0 = poker face).
    Everything emotional, the mouth-opening gain and head motion included, is scaled by it. The
    expression sets in over the first ~0.4 s and wobbles slowly; the head drifts with a few
    seeded sinusoids (less when sad, more when angry).
    """
    n = len(envelope)
    t = np.arange(n) / fps
    ref = float(np.percentile(envelope, 95)) if n else 1.0
    env = np.clip(envelope / max(ref, 1e-6), 0.0, 1.0) ** 0.8
    env = np.convolve(env, [0.25, 0.5, 0.25], mode="same")  # lips move smoothly
    jaw = JAW_REST + (JAW_OPEN - JAW_REST) * (1.0 + JAW_GAIN[emotion] * expressivity) * env
    onset = np.clip(t / 0.4, 0.0, 1.0)
    onset = 0.3 + 0.7 * onset * onset * (3 - 2 * onset)
    wobble = 1.0 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 2 * np.pi))
    strength = expressivity * onset * wobble
    target = EMOTION_TARGETS[emotion]
    base_smile = NEUTRAL_SMILE + style.rest_smile
    tracks = {name: target.get(name, 0.0) * strength for name in ("smile", "inner_up", "lower", "squint")}
    # Idiosyncratic, emotion-free facial variation per utterance (people do not hold one resting
    # face), so a weak expression cannot be told from the noise.
    for name, spread in FACE_NOISE.items():
        tracks[name] = tracks[name] + rng.normal(0.0, spread)
    tracks["smile"] = base_smile + tracks["smile"]
    tracks["smirk"] = smirk * onset
    motion = style.motion * (1.0 + MOTION_GAIN[emotion] * expressivity)

    def drift(amplitude: float) -> np.ndarray:
        freqs, phases = rng.uniform(0.15, 0.7, 3), rng.uniform(0, 2 * np.pi, 3)
        return amplitude * np.sum(np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]), axis=0) / 2.0

    head_down = HEAD_DOWN_PX * expressivity if emotion == "sad" else 0.0
    return FaceTrack(
        jaw=jaw, smile=tracks["smile"], smirk=tracks["smirk"], inner_up=tracks["inner_up"],
        lower=tracks["lower"], squint=tracks["squint"], rotation_deg=drift(1.5 * motion),
        shift_x=drift(2.5 * motion), shift_y=drift(2.0 * motion) - head_down,
    )
