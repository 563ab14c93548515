"""Atomic outputs: every stage writes to a temporary name beside the target, then renames.

Why: a job killed mid-write (kill -9, a cluster pre-emption, a full disk) must never leave a
truncated file under the output's name, where it would look complete to Snakemake and to the
next stage. `os.replace` is atomic on one filesystem, so the target is either the old version,
absent, or the whole new one. The temporary name keeps the target's suffix (numpy and torch
choose formats by it) and starts with a dot, so globs over a folder do not see it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write `target` to; on success it becomes `target`, on an
    exception it is removed and `target` is left as it was. Works for files and folders (a
    folder target replaces any old folder of that name)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(target)
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and not tmp.is_symlink():
            _remove(target)
        os.replace(tmp, target)
    finally:
        _remove(tmp)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `target` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
