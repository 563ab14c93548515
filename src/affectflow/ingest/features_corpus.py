"""A corpus whose features come as files (``features:`` in a corpus config) rather than media.

Why: the published multimodal-sentiment corpora circulate as feature files, not recordings:
MMSA pickles (CMU-MOSI, CMU-MOSEI, CH-SIMS: ``aligned_50.pkl`` / ``unaligned_50.pkl``) and the
Memory Fusion Network release's HDF5 (YouTube, ICT-MMMO). Such a corpus enters the workflow as
one job, `build_features_corpus`: it reads the files, writes each modality's store where an
extractor's store would be (``results/<corpus>/features/<store>/shard=0.parquet``) and writes the
source manifest (utt_id, dataset, split from the files, labels) that ingest then validates like
any other, so the manifest, `assemble_dataset`, training, evaluation and the report are the
same as for a media corpus. No media extraction runs, and the corpus is a single shard.

Formats (`FORMATS`: the stores each provides, by the modality the files call it):

- ``mmsa``: `path` is the pickle; stores ``mmsa_text``, ``mmsa_audio``, ``mmsa_vision``
  (`affectflow.formats.mmsa`). Unpickling runs code chosen by whoever made the file, so the
  config must say ``trust: true``. Default label: ``sentiment`` (regression, -3 to 3; CH-SIMS's
  unimodal ``sentiment_T/A/V`` are in the manifest too: declare them under ``labels``).
- ``mfn``: `path` is the release root (holding ``youtube/``, ``mmmo/``) or one dataset's folder,
  `dataset` is ``youtube`` or ``mmmo``; stores ``mfn_audio`` (COVAREP), ``mfn_video`` (FACET)
  (`affectflow.formats.mfn`, which also says how the labels are derived). Default labels:
  `affectflow.formats.mfn.LABELS`.

`prepare_features_corpora` runs when the workflow starts: it fills a features corpus's default
``labels`` (when it gives none) and stops with a `ConfigError` naming the place for a pickle
without ``trust: true``, keys that only media corpora use, or ``training.modalities`` naming a
store the corpus does not have (an imported store on a media corpus included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from affectflow.formats.imported import ImportedCorpus, write_imported

SOURCE_CSV = "features.csv"  # the source manifest's name under results/<corpus>/source/
MEDIA_ONLY_KEYS = ("extractors", "extractor_params", "transcribe", "media_root", "default_split")


@dataclass(frozen=True)
class FeatureFormat:
    """One importable format: the stores it writes, by the modality its files call them, and
    what its files are (for messages)."""

    stores: Mapping[str, str]
    what: str


FORMATS: dict[str, FeatureFormat] = {
    "mmsa": FeatureFormat({"text": "mmsa_text", "audio": "mmsa_audio", "vision": "mmsa_vision"},
                          "an MMSA pickle"),
    "mfn": FeatureFormat({"audio": "mfn_audio", "video": "mfn_video"},
                         "the MFN release's HDF5 files"),
}


def imported_store_names() -> list[str]:
    """Every store name an import can write (legal in ``training.modalities``)."""
    return [name for fmt in FORMATS.values() for name in fmt.stores.values()]


def corpus_stores(spec: Mapping[str, Any]) -> dict[str, str]:
    """A `features` block's stores: {modality in the files: store name}."""
    return dict(FORMATS[spec["format"]].stores)


def default_labels(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The labels a corpus in this format has when its config gives none."""
    if spec["format"] == "mfn":
        from affectflow.formats.mfn import LABELS

        return {name: dict(label) for name, label in LABELS[spec["dataset"]].items()}
    return {"sentiment": {"type": "regression", "min": -3, "max": 3}}


def source_files(spec: Mapping[str, Any]) -> list[str]:
    """The files the import reads (the job's inputs, so changing one re-runs it)."""
    if spec["format"] == "mfn":
        from affectflow.formats.mfn import source_files as mfn_files

        return [str(p) for p in mfn_files(spec["path"], spec["dataset"])]
    return [str(spec["path"])]


def read_features(spec: Mapping[str, Any], corpus: str) -> ImportedCorpus:
    """Read a `features` block's files (the pickle only with ``trust: true``)."""
    if spec["format"] == "mfn":
        from affectflow.formats.mfn import read_mfn

        return read_mfn(spec["path"], spec["dataset"], corpus)
    from affectflow.formats.mmsa import read_mmsa

    return read_mmsa(spec["path"], corpus, trust=spec.get("trust") is True)


def build_features_corpus(spec: Mapping[str, Any], corpus: str,
                          manifest_csv: str | os.PathLike[str],
                          features_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Import a features corpus: ``<features_dir>/<store>/shard=0.parquet`` for each of its
    stores and the source manifest `manifest_csv`. Returns {modality: store folder, "manifest":
    CSV}."""
    data = read_features(spec, corpus)
    store_dirs = {m: Path(features_dir) / name for m, name in corpus_stores(spec).items()}
    return write_imported(data, store_dirs, manifest_csv)


def _modality_stores(config: Mapping[str, Any]) -> dict[str, str]:
    """training.modalities → {modality: the store it reads}."""
    return {m: s if isinstance(s, str) else str(s.get("extractor"))
            for m, s in config.get("training", {}).get("modalities", {}).items()}


def _check_corpus(name: str, corpus: Mapping[str, Any], modalities: Mapping[str, str]) -> list[str]:
    """Config problems of one corpus, one line each."""
    imported = set(imported_store_names())
    trains = bool(corpus.get("models", True))
    if "features" not in corpus:
        return [f"config error at training.modalities.{m}: {s!r} is imported from feature files, "
                f"but corpus {name} is not a features corpus (its stores come from extractors)"
                for m, s in modalities.items() if s in imported and trains]
    spec, place = corpus["features"], f"corpora.{name}.features"
    problems = []
    if spec["format"] == "mmsa" and spec.get("trust") is not True:
        problems.append(
            f"config error at {place}: {spec['path']} is a pickle, and unpickling runs code chosen "
            "by whoever made the file; it is loaded only with `trust: true` (set it if you trust "
            "the file's source)")
    if spec["format"] != "mmsa" and "trust" in spec:
        problems.append(f"config error at {place}.trust: only pickles (format mmsa) need trust")
    problems += [f"config error at corpora.{name}.{key}: a features corpus runs no media stage; "
                 f"remove {key!r}" for key in MEDIA_ONLY_KEYS if key in corpus]
    own = corpus_stores(spec).values()
    problems += [f"config error at training.modalities.{m}: corpus {name} ({FORMATS[spec['format']].what}) "
                 f"has the stores {', '.join(own)}, not {s!r}"
                 for m, s in modalities.items() if s not in own and trains]
    return problems


def prepare_features_corpora(config: dict[str, Any]) -> None:
    """Check every corpus against its kind (see the module docstring) and fill a features
    corpus's default labels; ConfigError with one line per problem."""
    from affectflow.config import ConfigError  # here: the import job's environment has no jsonschema

    modalities = _modality_stores(config)
    problems = [line for name, corpus in config.get("corpora", {}).items()
                for line in _check_corpus(name, corpus, modalities)]
    if problems:
        raise ConfigError("\n".join(problems))
    for corpus in config.get("corpora", {}).values():
        if "features" in corpus:
            corpus.setdefault("labels", default_labels(corpus["features"]))
