"""Face extractor: MediaPipe Face Mesh landmarks, head pose and landmark-based facial actions.

Per sampled frame (``fps``, default 5/s) it records whether a face was found, the 478 refined
Face Mesh landmarks, head pose (yaw, pitch, roll) and a compact vector of geometric facial-action
features. The features are **landmark-based estimates inspired by FACS action units, not
FACS-coded AUs**: distances and vertical offsets between mesh points, measured in a head-aligned
frame (the head rotation from the pose is undone) and divided by the inter-ocular distance, so
they do not depend on face size and depend little on head pose. They carry a per-person baseline
(face shape); normalise per speaker downstream when comparing people.

Head pose: ``cv2.solvePnP`` (SQPnP) of seven rigid mesh points against their positions in
MediaPipe's canonical face model (``canonical_face_model.obj``, centimetres): nose tip (1),
subnasale (2), nose bridge (6), eye outer corners (33, 263) and eye inner corners (133, 362).
They avoid the mouth and jaw, so expressions do not move the pose, and the forehead top (10),
which hair moves. Pinhole camera, focal length = the larger image side, no distortion. The
rotation is then taken relative to the line of sight from the camera to the head, so a face
looking into the lens reads about 0 wherever it sits in the frame (and the unknown focal length
matters little). Degrees: yaw > 0 when the face turns towards the image's right, pitch > 0 when
it tilts up, roll > 0 when it leans clockwise on screen (Tait-Bryan, R = Ry Rx Rz in camera axes).
Expect person-specific offsets of several degrees: the canonical model is an average face.

Geometric features (L/R are the subject's own left and right; unit: inter-ocular distance, the
distance between the two eye centres, each the mid-point of its eye corners); name: the AU it
approximates; what is measured (Face Mesh indices):

- mouth_open: AU25/AU26, lips apart; inner-lip gap 13-14.
- mouth_width: AU20/AU12, lips stretched; mouth-corner distance 61-291.
- lip_corner_lift: AU12, smile; height of the corners 61, 291 above the inner-lip centre.
- lip_corner_depress: AU15; depth of the corners 61, 291 below the subnasale 2.
- inner_brow_raise: AU1; height of the inner brows (55+107, 285+336) above the inner eye
  corners 133, 362.
- outer_brow_raise: AU2; height of the outer brows (46+70, 276+300) above the outer eye
  corners 33, 263.
- brow_distance: falls with AU4 (brow lowerer); distance between the inner brows.
- eye_open_l / eye_open_r: up with AU5, down with AU7, near 0 in a blink (AU45); lid gap, mean
  of 386-374, 385-380, 387-373 (left) and 159-145, 158-153, 160-144 (right).
- jaw_drop: AU26/AU27; depth of the chin 152 below the subnasale 2.
- cheek_raise: AU6; minus the depth of the cheek points 50, 280 below the eye centres
  (negative numbers; higher = cheeks raised).
- nose_length: falls with AU9 (nose wrinkler, the wings drawn up); depth of the nose wings
  129, 358 below the inner eye corners 133, 362.
- philtrum: falls with AU10 (upper lip raiser); depth of the upper lip's outer centre 0 below
  the subnasale 2.
- chin_height: falls with AU17 (chin raiser, the lower lip pushed up); depth of the chin 152
  below the lower lip's outer centre 17.
- lip_thickness: falls with AU23/AU24 (lips tightened or pressed thin); red-lip heights 0-13 plus
  14-17.

Tracking: Face Mesh runs in video mode (detection, then tracking from the previous frame) and is
reset for every utterance, so results never depend on which utterance ran before. The first
~3 sampled frames of an utterance come from a fresh detection and can differ from what the same
frames give inside a longer segment (about 2 degrees of pose, 0.04 of mouth opening at worst).
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from affectflow.features.base import ExtractionError, Extractor, FeatureResult, NotApplicable, Utterance, register
from affectflow.features.params import param
from affectflow.media.errors import MediaError
from affectflow.media.video import iter_video_frames

N_LANDMARKS = 478
GEOMETRIC_FEATURE_NAMES = [
    "mouth_open", "mouth_width", "lip_corner_lift", "lip_corner_depress", "inner_brow_raise",
    "outer_brow_raise", "brow_distance", "eye_open_l", "eye_open_r", "jaw_drop", "cheek_raise",
    "nose_length", "philtrum", "chin_height", "lip_thickness",
]
POSE_NAMES = ["yaw", "pitch", "roll"]
FACE_FEATURE_NAMES: list[str] = ["face_found", *POSE_NAMES, *GEOMETRIC_FEATURE_NAMES]
# pooled = [share of frames with a face, means over face frames of pose and geometry, their stds]
FACE_POOLED_NAMES: list[str] = (
    ["face_found_ratio"]
    + [f"{name}_mean" for name in FACE_FEATURE_NAMES[1:]]
    + [f"{name}_std" for name in FACE_FEATURE_NAMES[1:]]
)

# Canonical face model points (MediaPipe canonical_face_model.obj: x to the subject's left,
# y up, z out of the face), for the rigid points used by solvePnP.
_PNP_POINTS: dict[int, tuple[float, float, float]] = {
    1: (0.0, -1.126865, 7.475604),
    2: (0.0, -2.089024, 6.058267),
    6: (0.0, 2.473255, 5.788627),
    33: (-4.445859, 2.663991, 3.173422),
    263: (4.445859, 2.663991, 3.173422),
    133: (-1.856432, 2.585245, 3.757904),
    362: (1.856432, 2.585245, 3.757904),
}
_PNP_INDEX = np.array(list(_PNP_POINTS), dtype=np.int64)
# Same points in OpenCV camera axes (x right, y down, z away from the camera): a frontal face
# then has the identity rotation.
_PNP_MODEL = np.array(list(_PNP_POINTS.values()), dtype=np.float64) * np.array([1.0, -1.0, -1.0])

_RIGHT_EYE_CORNERS, _LEFT_EYE_CORNERS = (33, 133), (263, 362)
_RIGHT_LIDS, _LEFT_LIDS = ((159, 145), (158, 153), (160, 144)), ((386, 374), (385, 380), (387, 373))
_INNER_BROWS, _OUTER_BROWS = ((55, 107), (285, 336)), ((46, 70), (276, 300))
_INNER_EYE_CORNERS, _OUTER_EYE_CORNERS = (133, 362), (33, 263)
_LIP_INNER_TOP, _LIP_INNER_BOTTOM, _MOUTH_CORNERS = 13, 14, (61, 291)
_SUBNASALE, _CHIN, _CHEEKS = 2, 152, (50, 280)
_LIP_OUTER_TOP, _LIP_OUTER_BOTTOM, _NOSE_WINGS = 0, 17, (129, 358)


def head_pose(points_px: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(yaw, pitch, roll) in degrees and the head rotation (model -> line-of-sight frame).

    `points_px`: (478, >=2) landmarks in pixels. See the module docstring for the conventions.
    """
    import cv2

    focal = float(max(width, height))
    camera = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    image_points = np.ascontiguousarray(points_px[_PNP_INDEX, :2], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(_PNP_MODEL, image_points, camera, None,
                                  flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return np.zeros(3), np.eye(3)
    rotation, _ = cv2.Rodrigues(rvec)
    # Undo the turn from the optical axis to the ray through the head (face off-centre).
    ray = tvec.reshape(3) / max(float(np.linalg.norm(tvec)), 1e-9)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sin_angle = float(np.linalg.norm(axis))
    if sin_angle > 1e-9:
        to_ray, _ = cv2.Rodrigues(axis / sin_angle * np.arctan2(sin_angle, ray[2]))
        rotation = to_ray.T @ rotation
    # R = Ry(a) Rx(b) Rz(c) in camera axes (x right, y down, z ahead); flip a, b so that
    # turning right and tilting up are positive.
    a = np.arctan2(rotation[0, 2], rotation[2, 2])
    b = np.arcsin(np.clip(-rotation[1, 2], -1.0, 1.0))
    c = np.arctan2(rotation[1, 0], rotation[1, 1])
    return np.degrees(np.array([-a, -b, c])), rotation


def _mean(points: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:
    return points[list(indices)].mean(axis=0)


def geometric_features(points_px: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The GEOMETRIC_FEATURE_NAMES vector of one face (float64).

    `points_px`: (478, 3) landmarks in pixels (z scaled like x); `rotation`: model -> camera, as
    from `head_pose`. Landmarks are turned into the head frame (x to the image right of a frontal
    face, y down) and divided by the inter-ocular distance.
    """
    right_eye = _mean(points_px, _RIGHT_EYE_CORNERS)
    left_eye = _mean(points_px, _LEFT_EYE_CORNERS)
    iod = float(np.linalg.norm(left_eye - right_eye))
    if iod <= 1e-6:
        return np.zeros(len(GEOMETRIC_FEATURE_NAMES))
    p = (points_px - (left_eye + right_eye) / 2.0) @ rotation / iod  # rows: R^T v
    y = p[:, 1]

    def dist(i: int, j: int) -> float:
        return float(np.linalg.norm(p[i] - p[j]))

    def brow_height(brows: tuple[tuple[int, int], ...], corners: tuple[int, int]) -> float:
        return float(np.mean([y[c] - _mean(p, b)[1] for b, c in zip(brows, corners)]))

    corners_y = float(y[list(_MOUTH_CORNERS)].mean())
    lip_centre_y = (y[_LIP_INNER_TOP] + y[_LIP_INNER_BOTTOM]) / 2.0
    eye_centre_y = (_mean(p, _RIGHT_EYE_CORNERS)[1] + _mean(p, _LEFT_EYE_CORNERS)[1]) / 2.0
    values = {
        "mouth_open": dist(_LIP_INNER_TOP, _LIP_INNER_BOTTOM),
        "mouth_width": dist(*_MOUTH_CORNERS),
        "lip_corner_lift": lip_centre_y - corners_y,
        "lip_corner_depress": corners_y - y[_SUBNASALE],
        "inner_brow_raise": brow_height(_INNER_BROWS, _INNER_EYE_CORNERS),
        "outer_brow_raise": brow_height(_OUTER_BROWS, _OUTER_EYE_CORNERS),
        "brow_distance": float(np.linalg.norm(_mean(p, _INNER_BROWS[0]) - _mean(p, _INNER_BROWS[1]))),
        "eye_open_l": float(np.mean([dist(i, j) for i, j in _LEFT_LIDS])),
        "eye_open_r": float(np.mean([dist(i, j) for i, j in _RIGHT_LIDS])),
        "jaw_drop": y[_CHIN] - y[_SUBNASALE],
        "cheek_raise": eye_centre_y - float(y[list(_CHEEKS)].mean()),
        "nose_length": float(y[list(_NOSE_WINGS)].mean() - y[list(_INNER_EYE_CORNERS)].mean()),
        "philtrum": y[_LIP_OUTER_TOP] - y[_SUBNASALE],
        "chin_height": y[_CHIN] - y[_LIP_OUTER_BOTTOM],
        "lip_thickness": dist(_LIP_OUTER_TOP, _LIP_INNER_TOP) + dist(_LIP_INNER_BOTTOM, _LIP_OUTER_BOTTOM),
    }
    return np.array([values[name] for name in GEOMETRIC_FEATURE_NAMES], dtype=np.float64)


def face_row(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """One values row [1, yaw, pitch, roll, geometry...] from normalised (478, 3) landmarks."""
    points_px = landmarks.astype(np.float64) * np.array([width, height, width])
    pose, rotation = head_pose(points_px, width, height)
    return np.concatenate([[1.0], pose, geometric_features(points_px, rotation)])


class _FaceMeshCache:
    """A few Face Mesh graphs kept open per (detection, tracking) confidence, closed at exit.

    Creating a graph loads the TFLite models; `run` resets the tracker before each utterance so
    results never depend on which utterance the process handled before.
    """

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._graphs: OrderedDict[tuple[float, float], Any] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, frames: Iterable[np.ndarray], min_detection: float,
            min_tracking: float) -> np.ndarray:
        """(T, 478, 3) float32 normalised landmarks of the most confident face, NaN without one.

        `frames`: RGB uint8 (H, W, 3) images of one utterance, in time order (may be a generator).
        """
        import mediapipe as mp  # heavy import, only for jobs that run this extractor

        out: list[np.ndarray] = []
        key = (float(min_detection), float(min_tracking))
        with self._lock:
            graph = self._graphs.pop(key, None)
            if graph is None:
                graph = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                    min_detection_confidence=key[0], min_tracking_confidence=key[1])
            else:
                graph.reset()
            self._graphs[key] = graph
            while len(self._graphs) > self._size:
                self._graphs.popitem(last=False)[1].close()
            for frame in frames:
                faces = graph.process(frame).multi_face_landmarks
                points = np.full((N_LANDMARKS, 3), np.nan, dtype=np.float32)
                if faces:
                    points[:] = [(p.x, p.y, p.z) for p in faces[0].landmark]
                out.append(points)
        return np.stack(out) if out else np.zeros((0, N_LANDMARKS, 3), np.float32)

    def close(self) -> None:
        """Close every open graph (also run at interpreter exit)."""
        with self._lock:
            while self._graphs:
                self._graphs.popitem()[1].close()


_FACE_MESHES = _FaceMeshCache()
atexit.register(_FACE_MESHES.close)


def close_face_models() -> None:
    """Free the cached MediaPipe graphs now (they are re-created on the next call)."""
    _FACE_MESHES.close()


@dataclass(frozen=True)
class FaceConfig:
    fps: float = param(5.0, "Frames per second sampled from the video.", exclusiveMinimum=0)
    max_side: int = param(640, "Frames are downscaled so their longer side is at most this.", minimum=64)
    min_detection_confidence: float = param(0.5, "MediaPipe detection threshold.", minimum=0, maximum=1)
    min_tracking_confidence: float = param(0.5, "MediaPipe tracking threshold.", minimum=0, maximum=1)


@register
class Face(Extractor[FaceConfig]):
    """Face Mesh features of the utterance's video segment, sampled at `fps`.

    values (T, D) follow FACE_FEATURE_NAMES, zeros where no face was found; pooled follows
    FACE_POOLED_NAMES: the share of frames with a face, then the means and the stds of pose and
    geometry over the frames with a face. Frames without a face are recorded, not errors; an
    utterance with no face in any sampled frame raises ExtractionError.
    """

    name = "face"
    version = "2"
    modality = "video"
    description = "MediaPipe face mesh (478 landmarks), head pose and landmark-based facial action estimates."
    config_type = FaceConfig
    inputs = ("video",)

    def names(self) -> tuple[list[str], list[str]]:
        return list(FACE_FEATURE_NAMES), list(FACE_POOLED_NAMES)

    def extract(self, utt: Utterance) -> FeatureResult:
        path = utt.video_path
        if not path:
            raise NotApplicable("no video_path")
        config = self.config
        times: list[float] = []
        sizes: list[tuple[int, int]] = []  # (width, height) per frame: a stream may change size

        def frames() -> Iterator[np.ndarray]:  # streamed: never all frames in memory at once
            for t, frame in iter_video_frames(path, config.fps, utt.start_s, utt.end_s,
                                              max_side=config.max_side):
                times.append(t)
                sizes.append((frame.shape[1], frame.shape[0]))
                yield frame

        try:
            landmarks = _FACE_MESHES.run(frames(), config.min_detection_confidence,
                                         config.min_tracking_confidence)
        except MediaError as error:
            raise ExtractionError(error.reason) from error
        found = ~np.isnan(landmarks[:, 0, 0])
        if not found.any():
            raise ExtractionError(f"no face found in any of {len(times)} sampled frames")
        values = np.zeros((len(times), len(FACE_FEATURE_NAMES)), dtype=np.float64)
        for i in np.flatnonzero(found):
            values[i] = face_row(landmarks[i], *sizes[i])
        with_face = values[found, 1:]
        pooled = np.concatenate([[found.mean()], with_face.mean(axis=0), with_face.std(axis=0)])
        return FeatureResult(values=values, times=times, pooled=pooled,
                             extra={"face_found": found, "landmarks": landmarks.reshape(len(times), -1)})
