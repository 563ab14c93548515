"""Importers/exporters of other tools' formats: OpenFace 2, iMotions FACET, MMSA pickles, CSD."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.features.base import FeatureResult
from affectflow.features.reader import read_pooled, read_rejections, read_sequences, store_provenance
from affectflow.features.store import Provenance, StoreRow, write_partition
from affectflow.formats import (align_to_reference, csd_to_store, export_mmsa, import_facet,
                                import_mmsa, import_openface, read_csd, read_facet_export,
                                read_openface_csv, store_to_csd, write_csd)
from affectflow.formats.csd import benchmark_alignment, read_store_rows
from affectflow.formats.mmsa import UntrustedPickleError

# ---------------------------------------------------------------- OpenFace 2


@pytest.fixture(scope="module")
def openface_csv(shared_data: Path) -> Path:
    return shared_data / "formats" / "openface2_sample.csv"


@pytest.fixture(scope="module")
def facet_txt(shared_data: Path) -> Path:
    return shared_data / "formats" / "imotions_facet_v5_sample.txt"


@pytest.mark.shared_data
def test_openface_real_sample(openface_csv: Path) -> None:
    raw = pd.read_csv(openface_csv, skipinitialspace=True)
    result = read_openface_csv(openface_csv)
    assert result.values.shape == (100, 2 + 3 + 2 + 17 + 18)
    np.testing.assert_allclose(result.times, raw["timestamp"], atol=1e-7)
    np.testing.assert_allclose(result.values[:, 2], np.degrees(raw["pose_Rx"]), rtol=1e-5)
    np.testing.assert_allclose(result.values[:, 7], raw["AU01_r"], rtol=1e-6)  # first intensity
    np.testing.assert_allclose(result.values[:, -1], raw["AU45_c"])  # last presence
    gaze = (raw[["gaze_0_x", "gaze_0_y", "gaze_0_z"]].to_numpy()
            + raw[["gaze_1_x", "gaze_1_y", "gaze_1_z"]].to_numpy()) / 2
    np.testing.assert_allclose(result.values[:, 5], np.degrees(np.arctan2(gaze[:, 0], -gaze[:, 2])),
                               rtol=1e-5, atol=1e-5)
    landmarks = result.extra["landmarks"]
    assert landmarks.shape == (100, 136)
    np.testing.assert_allclose(landmarks[:, 0], raw["x_0"]); np.testing.assert_allclose(landmarks[:, 135], raw["y_67"])
    assert result.extra["face_found"].all()
    np.testing.assert_allclose(result.pooled[1:], result.values[:, 1:].mean(axis=0), rtol=1e-5)


@pytest.mark.shared_data
def test_import_openface_store(openface_csv: Path, tmp_path: Path) -> None:
    text = openface_csv.read_text()
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split(",")]
    no_face = tmp_path / "noface.csv"  # every frame unsuccessful
    column = header.index("success")
    body = [",".join("0" if j == column else c for j, c in enumerate(line.split(","))) for line in lines[1:]]
    no_face.write_text("\n".join([lines[0], *body]) + "\n")
    path = import_openface({"u1": openface_csv, "u2": no_face}, tmp_path / "store", "demo")
    assert path == tmp_path / "store" / "shard=0.parquet"
    seq = read_sequences(tmp_path / "store")
    assert seq.utt_ids == ["u1"] and seq.values.shape == (1, 100, 42)
    assert read_rejections(tmp_path / "store")["reason"].str.contains("no face").all()
    provenance = store_provenance(tmp_path / "store")
    assert provenance["extractor"] == "openface2" and provenance["params"]["imported"] is True
    import hashlib
    assert provenance["params"]["sources"]["u1"]["sha256"] == hashlib.sha256(openface_csv.read_bytes()).hexdigest()
    assert provenance["value_names"][:3] == ["success", "confidence", "pose_Rx_deg"]
    assert read_pooled(tmp_path / "store").values.shape == (1, 42)


def _drop_column(lines: list[str], name: str) -> list[str]:
    index = [c.strip() for c in lines[0].split(",")].index(name)
    return [",".join(c for j, c in enumerate(line.split(",")) if j != index) for line in lines]


@pytest.mark.shared_data
def test_openface_malformed_variants_name_file_and_field(openface_csv: Path, tmp_path: Path) -> None:
    lines = openface_csv.read_text().splitlines()
    truncated = tmp_path / "truncated.csv"
    truncated.write_text("\n".join(lines[:50]) + "\n" + lines[50][: len(lines[50]) // 3])
    with pytest.raises(ValueError, match=r"truncated\.csv: column '.+', line 51: empty cell"):
        read_openface_csv(truncated)
    no_time = tmp_path / "no_timestamp.csv"
    no_time.write_text("\n".join(_drop_column(lines, "timestamp")))
    with pytest.raises(ValueError, match=r"no_timestamp\.csv: missing column 'timestamp'"):
        read_openface_csv(no_time)
    no_aus = lines
    for name in [c.strip() for c in lines[0].split(",") if c.strip().startswith("AU")]:
        no_aus = _drop_column(no_aus, name)
    (tmp_path / "no_aus.csv").write_text("\n".join(no_aus))
    with pytest.raises(ValueError, match=r"no_aus\.csv: missing column 'AUxx_r'"):
        read_openface_csv(tmp_path / "no_aus.csv")
    cells = lines[10].split(",")
    cells[[c.strip() for c in lines[0].split(",")].index("AU12_r")] = " n/a"
    (tmp_path / "text_cell.csv").write_text("\n".join([*lines[:10], ",".join(cells), *lines[11:]]))
    with pytest.raises(ValueError, match=r"text_cell\.csv: column 'AU12_r', line 11: not a number: 'n/a'"):
        read_openface_csv(tmp_path / "text_cell.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: empty file"):
        read_openface_csv(tmp_path / "empty.csv")


# ---------------------------------------------------------------- iMotions FACET


@pytest.mark.shared_data
def test_facet_real_sample(facet_txt: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(facet_txt, sep="\t", skiprows=5)
    facet = raw[raw["EventSource"].str.contains("FACET")]
    result = read_facet_export(facet_txt)
    assert result.values.shape == (len(facet), 4 + 10 + 20) == (264, 34)
    np.testing.assert_allclose(result.times, facet["Timestamp"] / 1000, rtol=1e-6)
    found = facet["NoOfFaces"].to_numpy() > 0
    assert (result.extra["face_found"] == found).all() and found.sum() == 230
    assert np.all(result.values[~found] == 0)
    np.testing.assert_allclose(result.values[found, 1], facet.loc[found, "Yaw Degrees"], rtol=1e-6)
    np.testing.assert_allclose(result.values[found, 4], facet.loc[found, "Joy Evidence"], rtol=1e-6)
    np.testing.assert_allclose(result.values[found, -1], facet.loc[found, "AU43 Evidence"], rtol=1e-6)
    assert result.extra["landmarks"].shape == (264, 16)
    assert result.pooled[0] == pytest.approx(230 / 264)
    store = import_facet({"nate": facet_txt}, tmp_path / "facet", "demo")
    provenance = store_provenance(store)
    assert provenance["extractor"] == "facet" and provenance["value_names"][4] == "Joy Evidence"
    assert provenance["params"]["headers"]["nate"]["Version"] == "5.7.2375.0"
    media = read_facet_export(facet_txt, time_column="MediaTime", stimulus="screen_data")
    assert len(media.times) == 72 and media.times[0] == pytest.approx(0.053)


def _crlf(path: Path, lines: list[str]) -> None:
    path.write_bytes("\r\n".join(lines).encode("utf-8"))


@pytest.mark.shared_data
def test_facet_malformed_variants_name_file_and_field(facet_txt: Path, tmp_path: Path) -> None:
    lines = facet_txt.read_bytes().decode("utf-8").split("\r\n")
    header = lines[5].split("\t")
    # the last FACET row with a face, cut in the middle of its evidence columns
    last_face = max(i for i, line in enumerate(lines[6:], 6)
                    if "FACET" in line and line.split("\t")[header.index("NoOfFaces")] == "1")
    cut = lines[last_face].split("\t")[: header.index("AU10 Evidence")]
    _crlf(tmp_path / "truncated.txt", [*lines[:last_face], "\t".join(cut)])
    with pytest.raises(ValueError, match=rf"truncated\.txt: column 'AU10 Evidence', line {last_face + 1}: "
                                         "empty cell in a frame with a face"):
        read_facet_export(tmp_path / "truncated.txt")
    k = [i for i, line in enumerate(lines[6:], 6) if "FACET" in "".join(line.split("\t")[7:8])][3]
    cells = lines[k].split("\t")
    cells[header.index("AU4 Evidence")] = "abc"
    _crlf(tmp_path / "bad_cell.txt", [*lines[:k], "\t".join(cells), *lines[k + 1:]])
    with pytest.raises(ValueError, match=rf"bad_cell\.txt: column 'AU4 Evidence', line {k + 1}: not a number: 'abc'"):
        read_facet_export(tmp_path / "bad_cell.txt")
    drop = header.index("Yaw Degrees")
    _crlf(tmp_path / "no_yaw.txt",
          ["\t".join(c for j, c in enumerate(line.split("\t")) if j != drop) for line in lines])
    with pytest.raises(ValueError, match=r"no_yaw\.txt: missing column 'Yaw Degrees'"):
        read_facet_export(tmp_path / "no_yaw.txt")
    _crlf(tmp_path / "meta_only.txt", lines[:5])
    with pytest.raises(ValueError, match=r"meta_only\.txt: missing column 'Timestamp'"):
        read_facet_export(tmp_path / "meta_only.txt")


# ---------------------------------------------------------------- MMSA pickles


class _WritesFile:
    """A pickle payload that creates a file when unpickled."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').close()",))


def test_mmsa_import_refuses_untrusted_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"train": _WritesFile(str(marker))}))
    with pytest.raises(UntrustedPickleError, match=r"executes code.*trust=True"):
        import_mmsa(evil, tmp_path / "out", "x")
    assert not marker.exists() and not (tmp_path / "out").exists()
    with pytest.raises(Exception):  # trusted: the payload runs (it is the user's call)
        import_mmsa(evil, tmp_path / "out", "x", trust=True)
    assert marker.exists()


def _toy_stores(root: Path, n: int = 7, token_ids: bool = True) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Text (per-token times, token ids), audio (100 Hz) and vision (25 Hz) stores of `n` utterances."""
    rng = np.random.default_rng(3)
    rows: dict[str, list[StoreRow]] = {"text": [], "audio": [], "vision": []}
    records = []
    for i in range(n):
        utt, duration = f"clip{i}", rng.uniform(1.5, 6.0)
        n_tok = int(rng.integers(3, 70))  # some longer than 50 tokens: truncated
        words = np.sort(rng.uniform(0.1, duration - 0.1, n_tok))
        extra = {"token_ids": rng.integers(1000, 30000, n_tok).astype(float)} if token_ids else {}
        text = rng.standard_normal((n_tok, 6))
        rows["text"].append(StoreRow(utt, "t", FeatureResult(text, text.mean(0), words, extra)))
        for name, rate, dim in (("audio", 100, 5), ("vision", 25, 4)):
            t = np.arange(int(duration * rate)) / rate + 0.5 / rate
            values = rng.standard_normal((len(t), dim))
            rows[name].append(StoreRow(utt, "a", FeatureResult(values, values.mean(0), t)))
        records.append({"utt_id": utt, "split": ["train", "dev", "test"][i % 3],
                        "transcript": f"words of {utt}", "sentiment": float(rng.uniform(-3, 3)),
                        "sentiment_T": float(rng.uniform(-3, 3))})
    stores = {}
    for name, store_rows in rows.items():
        write_partition(root / name / "shard=0.parquet", store_rows, Provenance(name, "1", {}, "toy", 0))
        stores[name] = root / name
    return pd.DataFrame(records), stores


def test_mmsa_export_import_round_trip(tmp_path: Path) -> None:
    manifest, stores = _toy_stores(tmp_path / "stores")
    out = export_mmsa(manifest, stores, tmp_path / "unaligned_50.pkl")
    with open(out, "rb") as handle:
        data = pickle.load(handle)
    assert set(data) == {"train", "valid", "test"}
    train = data["train"]
    assert train["audio"].dtype == np.float32 and train["audio"].shape == (3, 500, 5)
    assert train["vision"].shape == (3, 375, 4) and train["text"].shape == (3, 50, 6)
    assert train["text_bert"].shape == (3, 3, 50) and train["regression_labels"].dtype == np.float32
    assert "regression_labels_T" in train and list(train["id"]) == ["clip0", "clip3", "clip6"]
    assert np.all(train["audio"][0, train["audio_lengths"][0]:] == 0)
    paths = import_mmsa(out, tmp_path / "imported", "toy", trust=True)
    assert store_provenance(paths["audio"])["extractor"] == "mmsa_audio"
    back = pd.read_csv(paths["manifest"])
    assert back["split"].tolist().count("valid") == 2 and "sentiment_T" in back
    original = read_store_rows(stores["audio"])
    imported = read_store_rows(paths["audio"])
    for utt, row in original.items():
        np.testing.assert_array_equal(imported[utt]["values"], row["values"][:500])
    text_back = read_store_rows(paths["text"])
    for utt, row in read_store_rows(stores["text"]).items():
        np.testing.assert_array_equal(text_back[utt]["values"], row["values"][:50])
    again = export_mmsa(back, paths, tmp_path / "again.pkl")
    with open(again, "rb") as handle:
        data2 = pickle.load(handle)
    for split in data:
        for key, value in data[split].items():
            assert np.array_equal(np.asarray(value), np.asarray(data2[split][key])), (split, key)


def test_mmsa_aligned_export_averages_frames_per_token(tmp_path: Path) -> None:
    manifest, stores = _toy_stores(tmp_path / "stores", n=3, token_ids=False)
    out = export_mmsa(manifest, stores, tmp_path / "aligned_50.pkl", aligned=True)
    with open(out, "rb") as handle:
        train = pickle.load(handle)["train"]
    assert "text_bert" not in train  # no token ids and no tokenizer: left out, never faked
    assert train["audio"].shape == (1, 50, 5) and train["vision"].shape == (1, 50, 4)
    text = read_store_rows(stores["text"])["clip0"]
    audio = read_store_rows(stores["audio"])["clip0"]
    n = min(len(text["times"]), 50)
    assert train["audio_lengths"] == [n] == train["vision_lengths"]
    centres = np.unique(text["times"].astype(np.float64))
    middles = (centres[1:] + centres[:-1]) / 2
    k = 1  # the second token: from the middle before its centre to the middle after it
    word = np.searchsorted(centres, text["times"][k])
    start, end = middles[word - 1], middles[word]
    t = audio["times"].astype(np.float64)
    inside = (np.minimum(t + 0.005, end) - np.maximum(t - 0.005, start)) > 1e-5
    np.testing.assert_allclose(train["audio"][0, k], audio["values"][inside].mean(0), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- CMU-MultimodalSDK .csd


def _naive_sdk_align(features: np.ndarray, intervals: np.ndarray, ref: np.ndarray, eps: float = 1e-5) -> dict:
    """The SDK's `align` for one video, literally: per reference interval, intersect and average."""
    out = {}
    for i in range(ref.shape[0]):
        ref_time = ref[i]
        if abs(ref_time[0] - ref_time[1]) < eps:
            continue
        ref_copy = ref_time.copy()
        ref_copy[1] = -ref_copy[1]
        ref_copy = ref_copy[::-1]
        sub_copy = intervals.copy()
        sub_copy[:, 0] = -sub_copy[:, 0]
        where = np.all((sub_copy - ref_copy) > -eps, axis=1)
        inter = intervals[where]
        inter = np.stack([np.maximum(inter[:, 0], ref_time[0]), np.minimum(inter[:, 1], ref_time[1])], axis=1)
        keep = np.abs(inter[:, 0] - inter[:, 1]) > eps
        if keep.any():
            out[i] = np.average(features[where][keep], axis=0)
    return out


def _random_video(rng: np.random.Generator, regular: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(rng.integers(0, 300))
    if regular:  # sorted frames of one length, with gaps
        starts = np.sort(rng.uniform(0, 20, n))
        intervals = np.stack([starts, starts + 0.04], axis=1)
    else:  # any lengths, overlapping, unsorted, some of zero length
        starts = rng.uniform(0, 20, n)
        intervals = np.stack([starts, starts + rng.exponential(0.3, n) * (rng.random(n) > 0.1)], axis=1)
    features = rng.standard_normal((n, 7))
    words = np.sort(rng.uniform(-1, 21, (40, 2)), axis=1)
    words[::7, 1] = words[::7, 0]  # zero-length reference intervals
    if n:
        words[1] = intervals[0]  # exact touching / equal boundaries
        words[2] = [intervals[0, 1], intervals[0, 1] + 0.5]
    return features, intervals, words


@pytest.mark.parametrize("regular", [True, False])
def test_alignment_matches_naive_sdk_loop(regular: bool) -> None:
    rng = np.random.default_rng(11 if regular else 12)
    seq, ref = {}, {}
    for v in range(30):
        features, intervals, words = _random_video(rng, regular)
        seq[f"v{v}"], ref[f"v{v}"] = (features, intervals), words
    ref["absent"] = np.array([[0.0, 1.0]])  # a reference video with no frames at all
    aligned = align_to_reference(seq, ref)
    assert "absent" not in aligned
    checked = 0
    for video, words in ref.items():
        if video == "absent":
            continue
        naive = _naive_sdk_align(*seq[video], words)
        got = aligned.get(video)
        assert sorted(naive) == ([] if got is None else got.index.tolist())
        for row, i in enumerate([] if got is None else got.index):
            np.testing.assert_allclose(got.features[row], naive[i], rtol=1e-10, atol=1e-12)
            np.testing.assert_array_equal(got.intervals[row], words[i])
            checked += 1
    assert checked > 200
    zero = align_to_reference(seq, ref, empty="zero")
    assert zero["absent"].features.shape == (1, 7) and not zero["absent"].features.any()
    assert all(len(zero[v].features) == len(ref[v]) for v in ref)
    nan = align_to_reference(seq, ref, empty="nan", collapse="sum")
    v0 = aligned["v0"].index
    np.testing.assert_allclose(nan["v0"].features[v0] / np.array(
        [np.sum(_naive_overlaps(*seq["v0"], ref["v0"][i])) for i in v0])[:, None],
        aligned["v0"].features, rtol=1e-10)


def _naive_overlaps(features: np.ndarray, intervals: np.ndarray, word: np.ndarray) -> np.ndarray:
    return (np.minimum(intervals[:, 1], word[1]) - np.maximum(intervals[:, 0], word[0])) > 1e-5


def test_alignment_benchmark_runs_small() -> None:
    result = benchmark_alignment(n_videos=20, n_frames=300, dim=5, n_words=10, naive_videos=5)
    assert result["vectorised_s"] > 0 and result["speedup"] > 1


def test_csd_write_read_round_trip(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(5)
    data = {f"vid_{i}": (rng.standard_normal((n, 3)).astype(np.float32), np.cumsum(rng.random((n, 2)), 0))
            for i, n in enumerate([5, 1, 12])}
    meta = {"computational sequence description": "toy", "dimension names": ["a", "b", "c"]}
    path = write_csd(tmp_path / "toy.csd", "Toy", data, meta)
    name, back, metadata = read_csd(path)
    assert name == "Toy" and metadata["root name"] == "Toy" and metadata["dimension names"] == ["a", "b", "c"]
    assert metadata["md5"] is None and "uuid" in metadata and "dataset bib citation" in metadata
    for vid, (features, intervals) in data.items():
        np.testing.assert_array_equal(back[vid][0], features)
        np.testing.assert_array_equal(back[vid][1], intervals)
    with h5py.File(path, "r") as handle:  # the SDK's layout
        assert list(handle.keys()) == ["Toy"] and set(handle["Toy"]) == {"data", "metadata"}
        assert handle["Toy/data/vid_0/features"].shape == (5, 3)
        assert handle["Toy/metadata/root name"].shape == (1,)
        assert handle["Toy/metadata/root name"][0] in (b'"Toy"', '"Toy"')
    with pytest.raises(ValueError, match="'/'"):
        write_csd(tmp_path / "bad.csd", "Toy", {"a/b": data["vid_0"]}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.csd"]  # no half-written file


def test_store_to_csd_to_store_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    rng = np.random.default_rng(9)
    rows = []
    for i, n in enumerate([40, 3, 17]):
        values = rng.standard_normal((n, 4))
        rows.append(StoreRow(f"u{i}", "s", FeatureResult(values, values.mean(0), 0.1 + np.arange(n) * 0.04)))
    rows.append(StoreRow("bad", "s", reason="no face"))
    write_partition(tmp_path / "store" / "shard=0.parquet", rows,
                    Provenance("face", "1", {}, "toy", 0, ["a", "b", "c", "d"]))
    csd = store_to_csd(tmp_path / "store", tmp_path / "face.csd", "Face")
    name, data, metadata = read_csd(csd)
    assert name == "Face" and sorted(data) == ["u0", "u1", "u2"] and metadata["dimension names"] == list("abcd")
    np.testing.assert_allclose(data["u0"][1][:2], [[0.08, 0.12], [0.12, 0.16]], atol=1e-6)
    csd_to_store(csd, tmp_path / "back", "toy")
    assert store_provenance(tmp_path / "back")["extractor"] == "csd_Face"
    original, back = read_store_rows(tmp_path / "store"), read_store_rows(tmp_path / "back")
    for utt in original:
        np.testing.assert_array_equal(back[utt]["values"], original[utt]["values"])
        np.testing.assert_allclose(back[utt]["times"], original[utt]["times"], atol=1e-6)
    again = store_to_csd(tmp_path / "back", tmp_path / "again.csd", "Face")
    for utt, (features, intervals) in read_csd(again)[1].items():
        np.testing.assert_array_equal(features, data[utt][0])
        np.testing.assert_allclose(intervals, data[utt][1], atol=1e-6)
