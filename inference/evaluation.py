"""Evaluation of a trained model on held-out frames, as the seed studies report it, and the
aggregation over folds.

Binary tasks (a positive class named): sensitivity, specificity, accuracy, PPV and NPV with Wilson
intervals, F1, AUROC with its DeLong interval, Brier score, calibration curve and per-patient
accuracy come from the statistics package (annotations.statistics.accuracy.binary_accuracy, the
same code that scores readers); PR-AUC (average precision), the ROC curve, the confusion matrix
and the confidence histogram are added here. Multi-class tasks: accuracy, the confusion matrix,
per-class recall, one-vs-rest macro AUROC, multi-class Brier score, per-patient accuracy and the
confidence histogram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

from annotations.statistics.accuracy import binary_accuracy, per_patient_accuracy, wilson_proportion
from annotations.statistics.results import jsonable

HISTOGRAM_BINS = 10
# The scalar metrics averaged over folds (mean and sample standard deviation).
AGGREGATED = (
    "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "auroc", "pr_auc", "brier",
    "per_patient_accuracy_mean",
)  # fmt: skip


def confidence_histogram(probabilities: NDArray[np.float64], correct: NDArray[np.bool_]) -> dict[str, Any]:
    """How confident the model was (its top probability), in equal bins, split by right and wrong."""
    top = probabilities.max(axis=1) if probabilities.size else np.zeros(0)
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    right, _ = np.histogram(top[correct], bins=edges)
    wrong, _ = np.histogram(top[~correct], bins=edges)
    return {"bin_edges": edges.tolist(), "correct": right.tolist(), "wrong": wrong.tolist()}


def evaluate(
    *,
    labels: Sequence[str],
    targets: Sequence[int],
    probabilities: NDArray[np.float64],
    patients: Sequence[str],
    positive: str | None,
) -> dict[str, Any]:
    """Every metric of one evaluation (a fold's held-out frames, or an external set), JSON-ready.
    `targets` are class indices into `labels`; `probabilities` is (N, len(labels))."""
    y = np.asarray(targets, dtype=np.int64)
    n = int(y.size)
    if probabilities.shape != (n, len(labels)):
        raise ValueError(f"{probabilities.shape} probabilities for {n} frames and {len(labels)} classes")
    predicted = probabilities.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    correct = predicted == y
    result: dict[str, Any] = {
        "n_frames": n,
        "n_patients": len(set(patients)),
        "labels": list(labels),
        "positive": positive,
        "class_counts": np.bincount(y, minlength=len(labels)).tolist(),
        "confusion_matrix": confusion_matrix(y, predicted, labels=list(range(len(labels)))).tolist(),
        "confidence_histogram": confidence_histogram(probabilities, correct),
    }
    if positive is not None:
        result.update(_binary(y, probabilities, labels.index(positive), patients))
    else:
        result.update(_multiclass(y, probabilities, predicted, correct, labels, patients))
    converted: dict[str, Any] = jsonable(result)
    return converted


def _binary(
    y: NDArray[np.int64], probabilities: NDArray[np.float64], positive: int, patients: Sequence[str]
) -> dict[str, Any]:
    truth = y == positive
    score = probabilities[:, positive]
    call = probabilities.argmax(axis=1) == positive
    accuracy = binary_accuracy(
        truth, call, scores=score, score_kind="probability", probabilities=score, patients=list(patients)
    )
    both_classes = bool(truth.any() and not truth.all())
    curve = None
    if both_classes:
        fpr, tpr, thresholds = roc_curve(truth, score)
        curve = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": [min(t, 1.0) for t in thresholds.tolist()],
        }
    return {
        "accuracy": accuracy.accuracy.to_dict(),
        "sensitivity": accuracy.sensitivity.to_dict(),
        "specificity": accuracy.specificity.to_dict(),
        "ppv": accuracy.ppv.to_dict(),
        "npv": accuracy.npv.to_dict(),
        "f1": accuracy.f1,
        "auroc": accuracy.auc,
        "pr_auc": float(average_precision_score(truth, score)) if both_classes else None,
        "brier": accuracy.brier_score,
        "calibration": accuracy.calibration.to_dict() if accuracy.calibration else None,
        "per_patient_accuracy": accuracy.per_patient.to_dict() if accuracy.per_patient else None,
        "roc_curve": curve,
        "reason": accuracy.reason,
    }


def _multiclass(
    y: NDArray[np.int64],
    probabilities: NDArray[np.float64],
    predicted: NDArray[np.int64],
    correct: NDArray[np.bool_],
    labels: Sequence[str],
    patients: Sequence[str],
) -> dict[str, Any]:
    n = y.size
    onehot = np.eye(len(labels))[y] if n else np.zeros((0, len(labels)))
    recall = {}
    for index, label in enumerate(labels):
        members = y == index
        recall[label] = wilson_proportion(
            int((predicted[members] == index).sum()), int(members.sum())
        ).to_dict()
    auroc = None
    reason = ""
    if len(set(y.tolist())) == len(labels) and n:
        auroc = {
            "auc": float(roc_auc_score(y, probabilities, multi_class="ovr", average="macro")),
            "method": "one-vs-rest macro",
        }
    else:
        reason = "AUROC needs every class among the held-out frames."
    return {
        "accuracy": wilson_proportion(int(correct.sum()), n).to_dict(),
        "recall_per_class": recall,
        "auroc": auroc,
        "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))) if n else None,
        "per_patient_accuracy": per_patient_accuracy(correct, list(patients)).to_dict() if n else None,
        "reason": reason,
    }


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of one evaluation, for the fold table and the aggregation."""

    def value(key: str) -> float | None:
        entry = metrics.get(key)
        if isinstance(entry, dict):
            entry = entry.get("value", entry.get("auc"))
        if entry is None or (isinstance(entry, float) and math.isnan(entry)):
            return None
        return float(entry)

    scalars = {key: value(key) for key in AGGREGATED if key != "per_patient_accuracy_mean"}
    per_patient = metrics.get("per_patient_accuracy")
    scalars["per_patient_accuracy_mean"] = float(per_patient["mean"]) if per_patient else None
    return scalars


def aggregate(folds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of each headline metric over the folds where it exists,
    and the per-patient accuracies of every fold pooled (the leave-one-patient-out distribution)."""
    table = [scalar_metrics(fold) for fold in folds]
    summary: dict[str, Any] = {}
    for key in AGGREGATED:
        values = [value for row in table if (value := row.get(key)) is not None]
        summary[key] = {
            "mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "n_folds": len(values),
        }
    patients: list[str] = []
    accuracies: list[float] = []
    for fold in folds:
        per_patient = fold.get("per_patient_accuracy")
        if per_patient:
            patients.extend(per_patient["patients"])
            accuracies.extend(per_patient["accuracy"])
    summary["per_patient_accuracy"] = {"patients": patients, "accuracy": accuracies}
    return summary
