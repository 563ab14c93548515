"""Face extractor on real clips (MediaPipe Face Mesh), plus synthetic checks of pose and smile."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

from affectflow.features.extractors import face
from affectflow.features.base import ExtractionError, FeatureResult, Utterance
from affectflow.features.extractors.face import FACE_FEATURE_NAMES, FACE_POOLED_NAMES, face_row, head_pose
from affectflow.features.registry import build

COLUMN = {name: i for i, name in enumerate(FACE_FEATURE_NAMES)}


def utterance(path: Path | str, start_s: float | None = None,
              end_s: float | None = None) -> Utterance:
    return Utterance(utt_id=Path(path).stem, audio_path=None, video_path=str(path),
                     start_s=start_s, end_s=end_s, transcript="")


@pytest.fixture(scope="module")
def obama(shared_media: Path) -> FeatureResult:
    return build("face", {}).extract(utterance(shared_media / "obama_talking_head.mp4"))


@pytest.fixture(scope="module")
def wolfgang(shared_media: Path) -> FeatureResult:
    return build("face", {}).extract(utterance(shared_media / "WolfgangLanger_Pexels.mp4"))


def column(result: FeatureResult, name: str) -> np.ndarray:
    return result.values[result.extra["face_found"], COLUMN[name]]


def test_constants() -> None:
    assert FACE_FEATURE_NAMES[:4] == ["face_found", "yaw", "pitch", "roll"]
    assert len(FACE_FEATURE_NAMES) == 19 and len(set(FACE_FEATURE_NAMES)) == 19
    assert len(FACE_POOLED_NAMES) == 1 + 2 * (len(FACE_FEATURE_NAMES) - 1)


@pytest.mark.shared_data
def test_obama_talking_head(obama: FeatureResult) -> None:
    found = obama.extra["face_found"]
    assert obama.values.shape == (100, len(FACE_FEATURE_NAMES))  # 20 s at 5 fps
    np.testing.assert_allclose(obama.times, np.arange(100) * 0.2, atol=1e-5)
    assert found.dtype == bool and found.mean() >= 0.95
    landmarks = obama.extra["landmarks"].reshape(len(found), 478, 3)[found]
    assert np.isfinite(landmarks).all()
    assert landmarks[..., :2].min() > -0.05 and landmarks[..., :2].max() < 1.05
    assert build("face", {}).names() == (FACE_FEATURE_NAMES, FACE_POOLED_NAMES)
    for angle in ("yaw", "pitch", "roll"):
        assert np.abs(column(obama, angle)).max() < 45, angle
    mouth = column(obama, "mouth_open")
    assert mouth.std() > 0.03 and mouth.max() - mouth.min() > 0.2  # he is speaking
    eyes = column(obama, "eye_open_l")
    assert eyes.min() < 0.5 * np.median(eyes)  # at least one blink among 100 frames
    assert obama.pooled.shape == (len(FACE_POOLED_NAMES),)
    assert obama.pooled[0] == pytest.approx(found.mean())
    mean_mouth = obama.pooled[FACE_POOLED_NAMES.index("mouth_open_mean")]
    assert mean_mouth == pytest.approx(mouth.mean(), rel=1e-4)


@pytest.mark.shared_data
def test_expressive_face_varies(wolfgang: FeatureResult) -> None:
    assert wolfgang.extra["face_found"].mean() >= 0.95
    ranges = {name: np.ptp(column(wolfgang, name))
              for name in ("lip_corner_lift", "mouth_open", "eye_open_l", "eye_open_r", "roll")}
    assert ranges["lip_corner_lift"] > 0.15, ranges  # neutral to broad smiles
    assert ranges["mouth_open"] > 0.2 and ranges["eye_open_r"] > 0.1, ranges
    assert ranges["roll"] > 20, ranges  # she tilts her head both ways
    # Smiles widen the mouth (AU12 pulls the corners up and out); both eyes blink together.
    assert np.corrcoef(column(wolfgang, "lip_corner_lift"), column(wolfgang, "mouth_width"))[0, 1] > 0.5
    assert np.corrcoef(column(wolfgang, "eye_open_l"), column(wolfgang, "eye_open_r"))[0, 1] > 0.8


@pytest.mark.shared_data
def test_no_face_clip_is_rejected(shared_media: Path) -> None:
    with pytest.raises(ExtractionError, match=r"no face found in any of \d+ sampled frames"):
        build("face", {}).extract(utterance(shared_media / "no_face.mp4"))


@pytest.mark.shared_data
def test_segment_params_and_order_independence(shared_media: Path, obama: FeatureResult) -> None:
    """A segment's rows do not depend on what ran before (the tracker is reset per utterance),
    and after the first few frames (fresh detection, then tracking) they match the whole clip's."""
    segment = utterance(shared_media / "obama_talking_head.mp4", start_s=4.0, end_s=7.0)
    first = build("face", {}).extract(segment)
    build("face", {}).extract(utterance(shared_media / "single_face.mp4"))  # leaves the tracker elsewhere
    again = build("face", {}).extract(segment)
    np.testing.assert_array_equal(first.values, again.values)
    assert len(first.times) == 15 and first.times[0] == 0.0
    settled = slice(4, 15)
    np.testing.assert_allclose(first.values[settled, 1:4], obama.values[20:35][settled, 1:4], atol=1.0)
    np.testing.assert_allclose(first.values[settled, 4:], obama.values[20:35][settled, 4:], atol=0.02)
    slower = build("face", {"fps": 2, "max_side": 256}).extract(segment)
    assert len(slower.times) == 6 and slower.extra["face_found"].all()


def test_no_video_path() -> None:
    with pytest.raises(ExtractionError, match="no video_path"):
        build("face", {}).extract(Utterance("u", "/a.wav", None, None, None, ""))


def test_face_missing_in_some_frames(tmp_path: Path) -> None:
    """Frames without a face get zeros and NaN landmarks; the utterance is still extracted."""
    face_img = skimage.data.astronaut()[:, :, :3]
    path = tmp_path / "half_face.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        for i in range(10):
            image = face_img if i < 5 else np.full_like(face_img, 90)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    result = build("face", {"fps": 5}).extract(utterance(path))
    found = result.extra["face_found"]
    assert found.tolist() == [True] * 5 + [False] * 5
    assert (result.values[~found] == 0).all()
    assert np.isnan(result.extra["landmarks"][~found]).all()
    assert result.pooled[0] == pytest.approx(0.5)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Model -> camera rotation for the documented angle conventions."""
    a, b, c = np.radians([-yaw, -pitch, roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (0, 15, 0), (0, 0, -20), (-20, -10, 15)])
def test_head_pose_recovers_known_rotations(angles: tuple[float, float, float]) -> None:
    """Canonical points projected with a known pose, centred or off-centre, come back."""
    size = 500
    for offset_x in (0.0, 15.0):  # off-centre: angles are relative to the line of sight
        sight = np.array([offset_x, 0.0, 60.0]) / np.linalg.norm([offset_x, 0.0, 60.0])
        axis = np.cross([0.0, 0.0, 1.0], sight)
        to_sight, _ = cv2.Rodrigues(axis / max(np.linalg.norm(axis), 1e-12)
                                    * np.arcsin(np.linalg.norm(axis)))
        model = face._PNP_MODEL @ (to_sight @ _rotation(*angles)).T + [offset_x, 0.0, 60.0]
        points = np.zeros((478, 3))
        points[face._PNP_INDEX, :2] = model[:, :2] / model[:, 2:] * size + size / 2
        pose, _ = head_pose(points, size, size)
        np.testing.assert_allclose(pose, angles, atol=0.5)


def test_smile_feature_rises_when_mouth_corners_are_lifted() -> None:
    """Warp the astronaut's mouth corners up (and down): lip_corner_lift follows."""
    image = np.ascontiguousarray(skimage.data.astronaut()[:, :, :3])
    height, width = image.shape[:2]
    landmarks = face._FACE_MESHES.run([image], 0.5, 0.5)[0]
    assert not np.isnan(landmarks).any()
    corners = landmarks[[61, 291], :2] * [width, height]
    eyes = landmarks[[33, 263], :2] * [width, height]
    scale = float(np.linalg.norm(eyes[1] - eyes[0]))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)

    def lift_corners(amount: float) -> np.ndarray:
        shift = np.zeros_like(xs)
        for cx, cy in corners:  # a smooth bump around each corner, sampled from below
            shift += amount * scale * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * (0.12 * scale) ** 2))
        return cv2.remap(image, xs, ys + shift, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    warped = [lift_corners(a) for a in (-0.1, 0.0, 0.15)]
    rows = [face_row(lm, width, height) for lm in face._FACE_MESHES.run(warped, 0.5, 0.5)]
    lift = [row[COLUMN["lip_corner_lift"]] for row in rows]
    depress = [row[COLUMN["lip_corner_depress"]] for row in rows]
    assert lift[0] < lift[1] - 0.03 and lift[2] > lift[1] + 0.03, lift
    assert depress[0] > depress[1] > depress[2], depress
    brows = [row[COLUMN["inner_brow_raise"]] for row in rows]
    assert np.ptp(brows) < 0.03, brows  # a mouth warp leaves the brows alone
