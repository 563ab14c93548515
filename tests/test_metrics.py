"""Metrics against values computed by hand (confusion tables worked out on paper) and sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

from affectflow.evaluate.metrics import (
    aggregate_over_folds,
    aggregate_over_seeds,
    categorical_metrics,
    binary_metrics,
    confusion,
    emotion_metrics,
    multiclass_metrics,
    sentiment_metrics,
    single_label_rows,
    task_metrics,
    weighted_accuracy,
)

# 7 utterances, 3 classes. True classes 0 0 1 1 2 2 2; predicted (argmax) 0 1 1 1 2 0 2.
TRUE_CLS = np.array([0, 0, 1, 1, 2, 2, 2])
PRED_CLS = np.array([0, 1, 1, 1, 2, 0, 2])


def _probs(pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Sigmoid-like scores: 0.7 on the predicted class, 0.1 elsewhere (threshold 0.5 -> one-hot)."""
    p = np.full((len(pred), n_classes), 0.1)
    p[np.arange(len(pred)), pred] = 0.7
    return p


def test_emotion_metrics_hand_computed() -> None:
    y_true = np.eye(3, dtype=int)[TRUE_CLS]
    m = emotion_metrics(y_true, _probs(PRED_CLS, 3), ["neu", "hap", "sad"])
    # class neu: P=2 N=5 TP=1 TN=4 -> (1*5/2 + 4)/10 = 0.65 ; F1: prec 1/2 rec 1/2 -> 0.5
    # class hap: P=2 N=5 TP=2 TN=4 -> (2*5/2 + 4)/10 = 0.9  ; F1: prec 2/3 rec 1   -> 0.8
    # class sad: P=3 N=4 TP=2 TN=4 -> (2*4/3 + 4)/8 = 0.8333; F1: prec 1 rec 2/3   -> 0.8
    assert m["wacc_neu"] == pytest.approx(0.65)
    assert m["wacc_hap"] == pytest.approx(0.9)
    assert m["wacc_sad"] == pytest.approx((8 / 3 + 4) / 8)
    assert m["f1_neu"] == pytest.approx(0.5)
    assert m["f1_hap"] == pytest.approx(0.8)
    assert m["f1_sad"] == pytest.approx(0.8)
    assert m["wacc_avg"] == pytest.approx((0.65 + 0.9 + (8 / 3 + 4) / 8) / 3)
    assert m["f1_avg"] == pytest.approx(0.7)
    # single-label view: 5/7 correct; recalls 1/2, 2/2, 2/3
    assert m["acc"] == pytest.approx(5 / 7)
    assert m["uar"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)


def test_wacc_matches_formula_on_random_data() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = rng.integers(0, 2, 200)
    tp, tn = int(((y == 1) & (p == 1)).sum()), int(((y == 0) & (p == 0)).sum())
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    assert weighted_accuracy(y, p) == pytest.approx((tp * n_neg / n_pos + tn) / (2 * n_neg))


def test_emotion_class_without_positives_is_nan_and_skipped() -> None:
    y_true = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    y_prob = np.array([[0.9, 0.6], [0.2, 0.1], [0.1, 0.1], [0.6, 0.2]])
    m = emotion_metrics(y_true, y_prob, ["a", "b"])
    assert math.isnan(m["wacc_b"]) and math.isnan(m["f1_b"])
    # class a: P=2 N=2 TP=1 TN=1 -> (1*2/2+1)/4 = 0.5 ; F1 = 0.5
    assert m["wacc_a"] == pytest.approx(0.5)
    assert m["wacc_avg"] == pytest.approx(0.5) and m["f1_avg"] == pytest.approx(0.5)
    # threshold is inclusive (prob >= 0.5) and applied per class
    assert emotion_metrics(y_true, np.full((4, 2), 0.5), ["a", "b"])["f1_a"] == pytest.approx(2 / 3)


def test_emotion_metrics_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError):
        emotion_metrics(np.zeros((4, 2)), np.zeros((4, 3)), ["a", "b"])


Y_SENT = np.array([-2.6, -0.4, 0.0, 0.0, 1.2, 2.5])
P_SENT = np.array([-1.8, 0.3, -0.2, 0.1, 1.6, 0.4])


def test_sentiment_metrics_hand_computed() -> None:
    m = sentiment_metrics(Y_SENT, P_SENT)
    # has0: truth >=0 F F T T T T ; pred >=0 F T F T T T -> 4/6
    assert m["acc2_has0"] == pytest.approx(4 / 6)
    # weighted F1: positives (4) F1 0.75, negatives (2) F1 0.5 -> (3 + 1)/6
    assert m["f1_has0"] == pytest.approx(4 / 6)
    # non0 (drop the two zeros): truth F F T T ; pred F T T T -> 3/4
    assert m["acc2_non0"] == pytest.approx(0.75)
    # F1 pos = 0.8, F1 neg = 2/3, support 2 / 2
    assert m["f1_non0"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["f1_weighted"] == m["f1_non0"]
    # acc7: round(clip(.,±3)): truth -3 -0 0 0 1 2 (2.5 -> 2, half to even) ; pred -2 0 -0 0 2 0
    assert m["acc7"] == pytest.approx(3 / 6)
    # acc5: clip ±2 then round: truth -2 -0 0 0 1 2 ; pred -2 0 -0 0 2 0
    assert m["acc5"] == pytest.approx(4 / 6)
    assert m["mae"] == pytest.approx(4.3 / 6)
    assert m["corr"] == pytest.approx(pearsonr(Y_SENT, P_SENT)[0])


def test_sentiment_edge_cases() -> None:
    constant = sentiment_metrics(Y_SENT, np.full(6, 0.7))
    assert constant["corr"] == 0.0
    assert constant["acc2_has0"] == pytest.approx(4 / 6)
    all_zero = sentiment_metrics(np.zeros(4), np.array([0.1, -0.2, 0.3, 0.0]))
    assert math.isnan(all_zero["acc2_non0"]) and math.isnan(all_zero["f1_weighted"])
    with_missing = sentiment_metrics(np.append(Y_SENT, np.nan), np.append(P_SENT, 3.0))
    assert with_missing == pytest.approx(sentiment_metrics(Y_SENT, P_SENT))


def test_binary_metrics_hand_computed() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    prob = np.array([0.9, 0.4, 0.6, 0.2, 0.7, 0.1, 0.5, 0.8])
    m = binary_metrics(y, prob)
    # pred (>=0.5): 1 0 1 0 1 0 1 1 -> TP 3, FN 1, FP 2, TN 2
    assert m["acc"] == pytest.approx(5 / 8)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(6 / 9)
    assert m["uar"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    # negative-class F1 = 2*2/(2*2+1+2) = 4/7; equal supports
    assert m["f1_weighted"] == pytest.approx((6 / 9 + 4 / 7) / 2)
    assert m["f1_weighted"] == pytest.approx(f1_score(y, prob >= 0.5, average="weighted"))
    # weighted precision/recall (MUStARD's reported numbers): negative precision 2/3, recall 2/4
    assert m["precision_weighted"] == pytest.approx((3 / 5 + 2 / 3) / 2)
    assert m["recall_weighted"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert binary_metrics(y, prob, threshold=0.65)["recall"] == pytest.approx(2 / 4)


def test_multiclass_metrics_hand_computed() -> None:
    m = multiclass_metrics(TRUE_CLS, PRED_CLS)
    assert m["acc"] == pytest.approx(5 / 7)
    assert m["uar"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    # per-class F1 0.5, 0.8, 0.8 with supports 2, 2, 3
    assert m["f1_macro"] == pytest.approx(0.7)
    assert m["f1_weighted"] == pytest.approx((2 * 0.5 + 2 * 0.8 + 3 * 0.8) / 7)


def test_confusion_keeps_absent_classes() -> None:
    cm = confusion(TRUE_CLS, PRED_CLS, 4)
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)


def test_aggregate_over_seeds() -> None:
    per_seed = [
        {"sarcasm": {"acc": 0.6, "f1": 0.5}, "emotion": {"uar": 0.4}},
        {"sarcasm": {"acc": 0.8, "f1": 0.7}},
    ]
    agg = aggregate_over_seeds(per_seed)
    assert agg["sarcasm"]["acc"]["mean"] == pytest.approx(0.7)
    assert agg["sarcasm"]["acc"]["std"] == pytest.approx(math.sqrt(0.02))  # ddof=1
    assert agg["sarcasm"]["f1"]["mean"] == pytest.approx(0.6)
    assert agg["emotion"]["uar"] == {"mean": pytest.approx(0.4), "std": 0.0}  # one seed -> std 0
    single = aggregate_over_seeds([{"sarcasm": {"acc": 0.6}}])
    assert single["sarcasm"]["acc"]["std"] == 0.0


# ----------------------------------------------------------------------------- metrics by kind


def _softmax_like(pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows summing to 1 whose argmax is `pred` but where no class reaches 0.5 (C = 3)."""
    p = np.full((len(pred), n_classes), 0.3)
    p[np.arange(len(pred)), pred] = 0.4
    return p


def test_categorical_metrics_single_label_hand_computed() -> None:
    names = ["neu", "hap", "sad"]
    m = categorical_metrics(TRUE_CLS, _softmax_like(PRED_CLS, 3), names)
    assert set(m) == {"acc", "uar", "f1_weighted", "f1_macro"}
    assert m["acc"] == pytest.approx(5 / 7)
    assert m["uar"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert m["f1_macro"] == pytest.approx(0.7)
    assert m["f1_weighted"] == pytest.approx((2 * 0.5 + 2 * 0.8 + 3 * 0.8) / 7)
    # per-class one-vs-rest view of a single-label (softmax) task: the argmax is the decision,
    # so the numbers are those of the hand-computed emotion example although no score >= 0.5
    per = categorical_metrics(TRUE_CLS, _softmax_like(PRED_CLS, 3), names, per_class=True)
    assert per["wacc_neu"] == pytest.approx(0.65) and per["wacc_hap"] == pytest.approx(0.9)
    assert per["f1_sad"] == pytest.approx(0.8) and per["f1_avg"] == pytest.approx(0.7)
    assert per["acc"] == m["acc"] and per["f1_macro"] == m["f1_macro"]
    # multi-label (sigmoid) scores are thresholded per class instead: nothing reaches 0.5 here
    multi = categorical_metrics(TRUE_CLS, _softmax_like(PRED_CLS, 3), names, per_class=True,
                                multilabel=True)
    assert multi["f1_neu"] == 0.0 and multi["wacc_avg"] == pytest.approx(0.5)  # TPR 0, TNR 1
    assert multi["acc"] == pytest.approx(5 / 7)  # the single-label view still uses the argmax


def test_categorical_metrics_missing_labels_and_multi_hot() -> None:
    names = ["neu", "hap", "sad"]
    y = np.append(TRUE_CLS, [-1, -1]).astype(float)
    y[-1] = np.nan
    scores = _probs(np.append(PRED_CLS, [0, 1]), 3)
    assert categorical_metrics(y, scores, names, per_class=True) == pytest.approx(
        categorical_metrics(TRUE_CLS, _probs(PRED_CLS, 3), names, per_class=True))
    # multi-hot: the row with two labels counts for the per-class view, not the single-label one
    multi_hot = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [np.nan] * 3])
    prob = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.6], [0.1, 0.7, 0.3], [0.5, 0.5, 0.5]])
    m = categorical_metrics(multi_hot, prob, names, per_class=True, multilabel=True)
    assert m["acc"] == pytest.approx(1 / 2)  # rows 0 (right) and 2 (wrong)
    # sad: P=2 (rows 1, 2), N=1; predicted row 1 only -> TP 1, TN 1: (1*1/2 + 1)/2 = 0.75
    assert m["wacc_sad"] == pytest.approx(0.75) and m["f1_sad"] == pytest.approx(2 / 3)
    true_cls, pred_cls = single_label_rows(multi_hot, prob)
    assert true_cls.tolist() == [0, 2] and pred_cls.tolist() == [0, 1]
    with pytest.raises(ValueError, match="clash"):
        categorical_metrics(TRUE_CLS, _probs(PRED_CLS, 3), ["a", "avg", "b"], per_class=True)
    with pytest.raises(ValueError):
        categorical_metrics(np.array([-1, -1]), np.full((2, 3), 1 / 3), names)


def test_task_metrics_dispatch_by_kind() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    prob = np.array([0.9, 0.4, 0.6, 0.2, 0.7, 0.1, 0.5, 0.8])
    assert task_metrics("binary", y, prob) == binary_metrics(y, prob)
    assert task_metrics("regression", Y_SENT, P_SENT) == sentiment_metrics(Y_SENT, P_SENT)
    cat = task_metrics("categorical", TRUE_CLS, _probs(PRED_CLS, 3), ["a", "b", "c"], per_class=True)
    per_class = {f"{m}_{c}" for m in ("wacc", "f1") for c in ("a", "b", "c", "avg")}
    assert {"acc", "uar", "f1_weighted", "f1_macro"} | per_class == set(cat)
    with pytest.raises(ValueError):
        task_metrics("ordinal", y, prob)


def test_aggregate_over_folds_is_nan_aware() -> None:
    folds = [
        {"emotion": {"uar": 0.5, "wacc_sad": math.nan, "f1_sad": None}, "sarcasm": {"acc": 0.6}},
        {"emotion": {"uar": 0.7, "wacc_sad": 0.8, "f1_sad": None}},
        {"emotion": {"uar": 0.9, "wacc_sad": 0.6, "f1_sad": None}, "sarcasm": {"acc": 0.8}},
    ]
    agg = aggregate_over_folds(folds)
    assert agg["emotion"]["uar"] == pytest.approx(0.7)
    assert agg["emotion"]["wacc_sad"] == pytest.approx(0.7)  # fold 1 (sad absent) skipped
    assert math.isnan(agg["emotion"]["f1_sad"])  # undefined in every fold
    assert agg["sarcasm"]["acc"] == pytest.approx(0.7)  # only the folds reporting it
    # per seed: fold average; over seeds: mean ± std
    seeds = [aggregate_over_folds(folds), aggregate_over_folds([{"sarcasm": {"acc": 0.9}}])]
    assert aggregate_over_seeds(seeds)["sarcasm"]["acc"]["mean"] == pytest.approx(0.8)
