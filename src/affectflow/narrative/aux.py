"""Preprocessing outputs reused as auxiliary targets (paper 003, §4 and appendix A.2).

HAN-ROCK's sixteen auxiliary targets are what preprocessing already computed: four action units
(AU05, AU17, AU20, AU25: each utterance's mean intensity over its face frames), the four tone
scores, and the primary label of the turns around the utterance. They are written as extra
label columns of the narrative manifests:

- ``aux_AU05`` ... ``aux_AU25``, ``aux_happiness`` ... ``aux_fear``: the value's percentile rank
  among the train partition's values (mid-rank for ties, in [0, 1]), scaled to the primary
  task's range (its `min`..`max` for a regression label, 0..C−1 for a categorical one), so every
  auxiliary loss is on the primary's scale; null where the utterance has no such value;
- ``<primary>_back<k>`` and ``<primary>_ahead<k>`` (k = 1..4): the primary label of the k-th
  turn before / after in the dialogue (by ``turn``); where that turn does not exist, the
  nearest turn that does in the same direction (k−1, ..., 1), else the utterance's own label
  (nearest-non-missing substitution). A turn in another split than the utterance counts as
  missing: a train utterance must never be taught a test turn's label (its features can be that
  utterance's history input, so the test label would leak into training).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

AUX_AUS = ("AU05", "AU17", "AU20", "AU25")
HORIZON = 4


def percentile_ranks(values: pd.Series, train: pd.Series) -> pd.Series:
    """Each value's mid-rank among the train rows' values, in [0, 1]; NaN stays NaN."""
    reference = np.sort(values[train.astype(bool) & values.notna()].to_numpy(np.float64))
    if not len(reference):
        return pd.Series(np.nan, index=values.index)
    v = values.to_numpy(np.float64)
    rank = (np.searchsorted(reference, v, "left") + np.searchsorted(reference, v, "right")) / (2.0 * len(reference))
    return pd.Series(np.where(np.isnan(v), np.nan, rank), index=values.index)


def primary_range(spec: Mapping[str, Any]) -> tuple[float, float]:
    """The scale auxiliary ranks are mapped to: a regression label's min..max, a categorical
    label's class indices 0..C−1, 0..1 for a binary one."""
    if spec.get("type") == "categorical":
        return 0.0, float(len(spec["classes"]) - 1)
    if spec.get("type") == "regression" and "min" in spec and "max" in spec:
        return float(spec["min"]), float(spec["max"])
    return 0.0, 1.0


def neighbour_labels(manifest: pd.DataFrame, label: str, horizon: int = HORIZON) -> pd.DataFrame:
    """``<label>_back<k>`` / ``<label>_ahead<k>`` columns, aligned with `manifest`'s rows."""
    frame = manifest.assign(_turn=pd.to_numeric(manifest.get("turn"), errors="coerce"), _row=np.arange(len(manifest)))
    out = {f"{label}_{d}{k}": [None] * len(manifest) for d in ("back", "ahead") for k in range(1, horizon + 1)}
    groups = frame.sort_values(["dialogue_id", "_turn"]).groupby("dialogue_id", sort=False) \
        if "dialogue_id" in frame else [(None, frame)]
    for _, dialogue in groups:
        values, rows = dialogue[label].tolist(), dialogue["_row"].tolist()
        splits = dialogue["split"].tolist() if "split" in dialogue else [""] * len(rows)
        for i, row in enumerate(rows):
            def usable(j: int) -> bool:
                return 0 <= j < len(values) and splits[j] == splits[i] and not pd.isna(values[j])

            for k in range(1, horizon + 1):
                back = next((values[j] for j in range(i - k, i) if usable(j)), values[i])
                ahead = next((values[j] for j in range(i + k, i, -1) if usable(j)), values[i])
                out[f"{label}_back{k}"][row] = back
                out[f"{label}_ahead{k}"][row] = ahead
    return pd.DataFrame(out, index=manifest.index)


def aux_targets(manifest: pd.DataFrame, primary: str, spec: Mapping[str, Any],
                au_means: Mapping[str, Mapping[str, float]], tones: Mapping[str, Mapping[str, Any]],
                tone_names: Sequence[str]) -> pd.DataFrame:
    """The auxiliary label columns for `manifest`'s rows (see the module docstring).

    `au_means`: utt_id → {AU: mean intensity}; `tones`: utt_id → {tone: score}."""
    if primary not in manifest.columns:
        raise ValueError(f"narrative.aux_primary: the manifest has no label column {primary!r}")
    train = manifest.get("split", pd.Series("", index=manifest.index)).eq("train")
    lo, hi = primary_range(spec)
    ids = manifest["utt_id"].astype(str)
    columns = {}
    for au in AUX_AUS:
        raw = pd.Series([au_means.get(u, {}).get(au, np.nan) for u in ids], index=manifest.index, dtype=float)
        columns[f"aux_{au}"] = lo + (hi - lo) * percentile_ranks(raw, train)
    for tone in tone_names:
        raw = pd.Series([tones.get(u, {}).get(tone, np.nan) for u in ids], index=manifest.index, dtype=float)
        columns[f"aux_{tone}"] = lo + (hi - lo) * percentile_ranks(raw, train)
    return pd.concat([pd.DataFrame(columns, index=manifest.index), neighbour_labels(manifest, primary)], axis=1)


def loss_weights(manifest: pd.DataFrame, primary: str, spec: Mapping[str, Any], aux: Sequence[str],
                 primary_weight: float = 0.7, method: str = "mi_linear", seed: int = 0) -> dict[str, float]:
    """Task loss weights as in §4.4: the primary gets `primary_weight` (0.50-0.99), the rest is
    split over the auxiliary tasks `aux` randomly (``random``: a seeded Dirichlet draw), or by
    their mutual information with the primary label on the train rows (scikit-learn's
    estimator), linearly normalised (``mi_linear``) or softmax-normalised (``mi_softmax``)."""
    if not 0.5 <= primary_weight <= 0.99:
        raise ValueError(f"primary_weight must be in [0.50, 0.99], got {primary_weight}")
    if method not in ("random", "mi_linear", "mi_softmax"):
        raise ValueError(f"method must be random, mi_linear or mi_softmax, got {method!r}")
    rest = 1.0 - primary_weight
    if method == "random":
        shares = np.random.default_rng(seed).dirichlet(np.ones(len(aux)))
        return {primary: primary_weight, **{a: float(rest * w) for a, w in zip(aux, shares)}}
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    train = manifest[manifest.get("split", pd.Series("", index=manifest.index)).eq("train")]
    categorical = spec.get("type") in ("categorical", "binary")
    y = train[primary]
    mi = []
    for column in aux:
        values = train[column]
        discrete = not pd.api.types.is_numeric_dtype(values)
        if discrete:  # a categorical neighbour label: its class index, a discrete feature
            classes = sorted(str(v) for v in values.dropna().unique())
            values = values.map(lambda v: classes.index(str(v)) if pd.notna(v) else np.nan).astype(float)
        rows = values.notna() & y.notna()
        x = values[rows].to_numpy(np.float64)[:, None]
        target = y[rows].astype(str) if categorical else y[rows].astype(float)
        estimate = mutual_info_classif if categorical else mutual_info_regression
        mi.append(float(estimate(x, target, discrete_features=discrete, random_state=seed)[0])
                  if rows.sum() > 3 else 0.0)
    mi_arr = np.maximum(np.array(mi), 0.0)
    if method == "mi_softmax":
        shares = np.exp(mi_arr - mi_arr.max()) / np.exp(mi_arr - mi_arr.max()).sum()
    else:
        shares = mi_arr / mi_arr.sum() if mi_arr.sum() > 0 else np.full(len(aux), 1.0 / len(aux))
    return {primary: primary_weight, **{a: float(rest * w) for a, w in zip(aux, shares)}}
