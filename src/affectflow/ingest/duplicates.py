"""Byte-identical media under different utterance ids: found at ingest, reported or rejected.

Why: a corpus that ships one recording twice under two ids (RAVDESS has such a pair) leaks
test data into training and double-counts it. Comparing every file would read a whole corpus;
files are grouped by size first (one `stat` each) and only files that share a size are hashed,
so a normal corpus hashes nothing. Rows that share one file on purpose (segments of a long
recording) are not duplicates: only distinct paths are compared.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)
MEDIA_KEYS = ("audio_path", "video_path")
DUPLICATE_POLICIES = ("warn", "reject")


def _digest(path: str, chunk: int = 1 << 20) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            hasher.update(block)
    return hasher.hexdigest()


def find_duplicates(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    """(index of the later row, index of the first row with the same bytes, media key) for
    every accepted row whose media file is byte-identical to an earlier row's other file."""
    first_by_path: dict[str, tuple[int, str]] = {}
    for index, row in enumerate(rows):
        for key in MEDIA_KEYS:
            path = row.get(key)
            if isinstance(path, str) and path and path not in first_by_path:
                first_by_path[path] = (index, key)
    by_size: dict[int, list[str]] = defaultdict(list)
    for path in first_by_path:
        by_size[os.stat(path).st_size].append(path)
    found = []
    for paths in by_size.values():
        if len(paths) < 2:
            continue
        first_by_digest: dict[str, str] = {}
        for path in sorted(paths, key=lambda p: first_by_path[p][0]):
            digest = _digest(path)
            if digest in first_by_digest:
                later, key = first_by_path[path]
                found.append((later, first_by_path[first_by_digest[digest]][0], key))
            else:
                first_by_digest[digest] = path
    return sorted(found)


def apply_duplicate_policy(accepted: list[dict[str, Any]], rejected: list[dict[str, Any]],
                           source: str | os.PathLike[str], policy: str) -> list[dict[str, Any]]:
    """Log every byte-identical pair with both ids (rows carry their manifest row as `_row`);
    with policy `reject`, append the later row to `rejected` and leave it out."""
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicate_media must be one of {', '.join(DUPLICATE_POLICIES)}, not {policy!r}")
    dropped = set()
    for later, first, key in find_duplicates(accepted):
        a, b = accepted[first], accepted[later]
        message = (f"{b[key]} is byte-identical to the media of {a['utt_id']!r} (row {a['_row']}: "
                   f"{a.get('audio_path') or a.get('video_path')})")
        log.warning("%s, row %d (%s): %s: %s", source, b["_row"], b["utt_id"], key, message)
        if policy == "reject":
            dropped.add(later)
            rejected.append({"utt_id": b["utt_id"], "stage": "ingest", "row": b["_row"], "field": key,
                             "reason": f"{source}, row {b['_row']}: {key}: duplicate media: {message}"})
    return [row for i, row in enumerate(accepted) if i not in dropped]
