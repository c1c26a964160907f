"""Results of a reader study for its coordinator: accuracy, ROC/AUC, agreement, the AI effect and
automation bias, per question and per reading condition, computed from the stored readings.

Every statistic comes from :mod:`annotations.statistics` (Wilson proportions, DeLong AUC, Fleiss'
kappa in Gwet's generalisation, Krippendorff's alpha, Cohen's kappa, the patient-clustered
bootstrap) or :mod:`studies.mrmc` (Obuchowski-Rockette); nothing is re-implemented here.

Definitions
-----------
* **Cases.** Training cases are never analysed. A case enters the accuracy of a question when its
  reference standard names a value for the question's task.
* **Condition.** One arm's answers in one phase. Every arm gives the condition named after the arm:
  its final answers (the ``revised`` phase of a sequential arm, else the ``first``). A sequential arm
  also gives ``"<arm> (before AI)"``: its first, unaided answers.
* **Positive class.** Sensitivity, specificity, AUC, ROC and MRMC need a positive class: the caller's
  ``positive``, else, for a task with exactly two choices, the last choice by order (the ordered end,
  e.g. healthy/neoplastic -> neoplastic). A nominal task with more than two choices and no
  ``positive`` is analysed as multi-class: accuracy (exact match with the reference) and agreement
  only; the binary measures are null with a reason. With ``positive`` such a task is dichotomised
  (the positive choice against all others).
* **Rating (for ROC/AUC/MRMC AUC).** From the answer and its confidence c (1 guess .. 5 certain): a
  positive answer scores 5 + c (6..10), a negative one 6 - c (1..5), a 10-point scale from "certainly
  negative" to "certainly positive". A question without confidence scores the binary call (0/1).
* **Agreement with the AI.** The AI's answer for a case is the predicted value of the prediction shown
  with a reading (stored on it), else the frame's stored prediction of the question's frozen model
  version. Examination cases show many frames' predictions and have no single AI answer: they are
  left out of this measure.
* **Automation bias** (sequential arms): per reader, the first (unaided) against the revised (aided)
  answer of each case: correct->wrong and wrong->correct against the reference, and switches to or
  away from the AI's answer.
* **Fleiss' kappa difference** (with AI minus without): both kappas over the same patient resamples
  (cases of a patient drawn together), percentile interval.
* **MRMC**: :func:`studies.mrmc.mrmc_compare` (Obuchowski-Rockette, jackknife covariance, Hillis ddf)
  of each AI condition against each unaided one, for AUC (rating above) and for sensitivity and
  specificity (binary call). It needs fully crossed data (every reader reads every case in both
  conditions): a split-plot study or incomplete readings give a reason instead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_curve

from annotations.statistics import (
    StatisticsInputError,
    binary_accuracy,
    cluster_bootstrap,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_kappa_matrix,
    ratings_table_from_records,
    readers_vs_reference,
    wilson_proportion,
)
from annotations.statistics.ratings import RatingRecord
from annotations.statistics.resampled import fleiss_kappa_batch, ratio_batch
from annotations.statistics.results import jsonable
from inference.models import Prediction
from records.csvsafe import spreadsheet_safe
from studies import mrmc
from studies.models import ReaderStudy, Reading, StudyArm, StudyCase, StudyQuestion

Phase = Reading.Phase
DEFAULT_RESAMPLES = 2000
MAX_RESAMPLES = 10_000
MIN_RESAMPLES = 100
LEVEL = 0.95
AI_RATER = "AI (model)"
RATING_SCALE = "positive answer with confidence c -> 5 + c, negative answer -> 6 - c (1..10)"
BINARY_SCALE = "binary call (1 positive, 0 negative): the question asks no confidence"


class ResultsInputError(ValueError):
    """A request the results cannot be computed for (API 400); `field` names the parameter."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Condition:
    key: str
    arm: StudyArm
    phase: str

    @property
    def ai_shown(self) -> bool:
        return self.arm.assistance != StudyArm.Assistance.UNAIDED and self.phase == final_phase(self.arm)


def final_phase(arm: StudyArm) -> str:
    return Phase.REVISED if arm.sequential else Phase.FIRST


def study_conditions(arms: Sequence[StudyArm]) -> list[Condition]:
    conditions = []
    for arm in arms:
        conditions.append(Condition(arm.name, arm, final_phase(arm)))
        if arm.sequential:
            conditions.append(Condition(f"{arm.name} (before AI)", arm, Phase.FIRST))
    return conditions


def rating_of(value: str, confidence: int | None, positive: str) -> float:
    """The 10-point rating of an answer (see the module docstring); the 0/1 call without confidence."""
    is_positive = value == positive
    if confidence is None:
        return 1.0 if is_positive else 0.0
    return float(5 + confidence) if is_positive else float(6 - confidence)


@dataclass
class _Data:
    """The analysed readings of one question, indexed for the computations below."""

    study: ReaderStudy
    question: StudyQuestion
    choices: list[str]
    positive: str | None
    cases: dict[int, StudyCase]
    truth_value: dict[int, str]
    patient_of_case: dict[int, str]
    readers: list[str]
    conditions: list[Condition]
    # condition key -> reader -> case id -> reading
    readings: dict[str, dict[str, dict[int, Reading]]] = field(default_factory=dict)
    ai_value: dict[int, str] = field(default_factory=dict)


def parse_parameters(
    study: ReaderStudy, *, question_key: str | None, positive: str | None, resamples: str | int | None,
    seed: str | int | None,
) -> tuple[StudyQuestion, str | None, int, int]:  # fmt: skip
    """Validate the request's parameters: (question, positive class or None, resamples, seed)."""
    questions = list(study.questions.select_related("task").order_by("order", "id"))
    if not questions:
        raise ResultsInputError("The study asks no question.", field="question")
    if question_key:
        matching = [q for q in questions if q.task.key == question_key]
        if not matching:
            keys = ", ".join(q.task.key for q in questions)
            raise ResultsInputError(
                f"{question_key!r} is not a question of the study ({keys}).", field="question"
            )
        question = matching[0]
    else:
        question = questions[0]
    choices = _choices(question)
    if positive:
        if positive not in choices:
            raise ResultsInputError(
                f"{positive!r} is not a choice of {question.task.key!r} ({', '.join(choices)}).",
                field="positive",
            )
        chosen: str | None = positive
    else:
        chosen = choices[-1] if len(choices) == 2 else None
    n_resamples = _integer(resamples, DEFAULT_RESAMPLES, "resamples")
    if not MIN_RESAMPLES <= n_resamples <= MAX_RESAMPLES:
        raise ResultsInputError(
            f"resamples must be {MIN_RESAMPLES} to {MAX_RESAMPLES}, not {n_resamples}.", field="resamples"
        )
    bootstrap_seed = _integer(seed, study.seed, "seed")
    if not 0 <= bootstrap_seed < 2**63:
        raise ResultsInputError("seed must be a non-negative 64-bit integer.", field="seed")
    return question, chosen, n_resamples, bootstrap_seed


def _integer(raw: str | int | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ResultsInputError(f"{name} must be an integer, not {raw!r}.", field=name) from None


def _choices(question: StudyQuestion) -> list[str]:
    return list(
        question.task.choices.filter(is_active=True).order_by("order", "id").values_list("value", flat=True)
    )


def _load(study: ReaderStudy, question: StudyQuestion, positive: str | None) -> _Data:
    arms = list(study.arms.order_by("order", "id"))
    conditions = study_conditions(arms)
    analysed = {
        case.pk: case
        for case in StudyCase.objects.filter(study=study, is_training=False).select_related(
            "frame", "examination__patient"
        )
    }
    key = question.task.key
    truth_value = {pk: str(case.reference[key]) for pk, case in analysed.items() if key in case.reference}
    readers = list(
        study.readers.select_related("user").order_by("position").values_list("user__username", flat=True)
    )
    data = _Data(
        study=study,
        question=question,
        choices=_choices(question),
        positive=positive,
        cases=analysed,
        truth_value=truth_value,
        patient_of_case={pk: str(case.examination.patient_id) for pk, case in analysed.items()},
        readers=readers,
        conditions=conditions,
        readings={condition.key: defaultdict(dict) for condition in conditions},
    )
    by_arm_phase = {(condition.arm.pk, condition.phase): condition.key for condition in conditions}
    rows = Reading.objects.filter(
        question=question, case__study=study, case__is_training=False
    ).select_related("session__reader__user", "prediction")
    for reading in rows:
        condition_key = by_arm_phase.get((reading.session.arm_id, reading.phase))
        if condition_key is None:
            continue
        data.readings[condition_key][reading.session.reader.user.username][reading.case_id] = reading
        if reading.prediction is not None and reading.prediction.predicted_value:
            data.ai_value.setdefault(reading.case_id, reading.prediction.predicted_value)
    if question.model_version_id is not None:
        frame_cases = {case.frame_id: pk for pk, case in analysed.items() if case.frame_id is not None}
        stored = Prediction.objects.filter(
            frame_id__in=frame_cases, model_version_id=question.model_version_id, task_id=question.task_id
        ).exclude(predicted_value="")
        for frame_id, value in stored.values_list("frame_id", "predicted_value"):
            data.ai_value.setdefault(frame_cases[frame_id], value)
    return data


# --- Accuracy, ROC and AUC --------------------------------------------------------------------------


def _reader_accuracy(data: _Data, reader: str, readings: dict[int, Reading]) -> dict[str, Any]:
    case_ids = sorted(pk for pk in readings if pk in data.truth_value)
    values = [readings[pk].value for pk in case_ids]
    truths = [data.truth_value[pk] for pk in case_ids]
    if data.positive is None:
        correct = sum(value == truth for value, truth in zip(values, truths, strict=True))
        return {
            "reader": reader,
            "n_cases": len(case_ids),
            "accuracy": wilson_proportion(correct, len(case_ids), level=LEVEL, what="referenced"),
        }
    truth = np.array([value == data.positive for value in truths], dtype=bool)
    call = np.array([value == data.positive for value in values], dtype=bool)
    scores = np.array(
        [rating_of(readings[pk].value, readings[pk].confidence, data.positive) for pk in case_ids],
        dtype=np.float64,
    )
    result = binary_accuracy(truth, call, rater=reader, scores=scores, level=LEVEL)
    roc: dict[str, Any] | None = None
    if truth.any() and not truth.all():
        fpr, tpr, thresholds = roc_curve(truth, scores, drop_intermediate=False)
        roc = {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}
    auc_reason = result.reason if result.auc is None else ""
    if result.auc is None and not auc_reason:
        auc_reason = "AUC needs reference-positive and reference-negative cases."
    return {
        "reader": reader,
        "n_cases": len(case_ids),
        "true_positive": result.true_positive,
        "false_positive": result.false_positive,
        "true_negative": result.true_negative,
        "false_negative": result.false_negative,
        "sensitivity": result.sensitivity,
        "specificity": result.specificity,
        "accuracy": result.accuracy,
        "auc": result.auc,
        "auc_reason": auc_reason,
        "roc": roc,
    }


def _pooled(
    data: _Data, by_reader: dict[str, dict[int, Reading]], resamples: int, seed: int
) -> dict[str, Any]:
    """All readers' readings together; Wilson intervals treat readings as independent, the bootstrap
    resamples patients (every reading of a drawn patient's cases comes along)."""
    truth: list[bool] = []
    correct: list[bool] = []
    called: list[bool] = []
    patients: list[str] = []
    for readings in by_reader.values():
        for pk, reading in readings.items():
            if pk not in data.truth_value:
                continue
            reference = data.truth_value[pk]
            correct.append(reading.value == reference)
            truth.append(reference == data.positive)
            called.append(reading.value == data.positive)
            patients.append(data.patient_of_case[pk])
    t = np.array(truth, dtype=bool)
    c = np.array(called, dtype=bool)
    right = np.array(correct, dtype=bool)
    n = int(right.size)
    pooled: dict[str, Any] = {"n_readings": n}
    accuracy_numerator = right.astype(np.float64)
    ones = np.ones(n)
    if data.positive is None:
        pooled["accuracy"] = wilson_proportion(int(right.sum()), n, level=LEVEL, what="referenced")
        columns = {"accuracy": (accuracy_numerator, ones)}
    else:
        tp, fn = int((t & c).sum()), int((t & ~c).sum())
        tn, fp = int((~t & ~c).sum()), int((~t & c).sum())
        pooled.update(
            true_positive=tp, false_positive=fp, true_negative=tn, false_negative=fn,
            sensitivity=wilson_proportion(tp, tp + fn, level=LEVEL, what="reference-positive"),
            specificity=wilson_proportion(tn, tn + fp, level=LEVEL, what="reference-negative"),
            accuracy=wilson_proportion(tp + tn, n, level=LEVEL, what="referenced"),
        )  # fmt: skip
        columns = {
            "sensitivity": ((t & c).astype(np.float64), t.astype(np.float64)),
            "specificity": ((~t & ~c).astype(np.float64), (~t).astype(np.float64)),
            "accuracy": (accuracy_numerator, ones),
        }
    numerator = np.column_stack([pair[0] for pair in columns.values()]) if n else np.zeros((0, len(columns)))
    denominator = (
        np.column_stack([pair[1] for pair in columns.values()]) if n else np.zeros((0, len(columns)))
    )
    try:
        intervals = cluster_bootstrap(
            {tuple(columns): lambda weights: ratio_batch(numerator, denominator, weights)},
            clusters=patients, n_items=n, n_resamples=resamples, seed=seed, level=LEVEL,
        )  # fmt: skip
        pooled["bootstrap"] = {name: intervals[name] for name in columns}
        pooled["bootstrap_reason"] = ""
    except StatisticsInputError as error:
        pooled["bootstrap"] = None
        pooled["bootstrap_reason"] = str(error)
    return pooled


# --- Agreement -------------------------------------------------------------------------------------


def _level(data: _Data) -> Any:
    return "ordinal" if data.question.task.kind == "ordinal" else "nominal"


def _records(by_reader: dict[str, dict[int, Reading]]) -> list[RatingRecord]:
    return [
        RatingRecord(item=str(pk), rater=reader, value=reading.value)
        for reader, readings in by_reader.items()
        for pk, reading in sorted(readings.items())
    ]


def _agreement(data: _Data, by_reader: dict[str, dict[int, Reading]]) -> dict[str, Any]:
    records = _records(by_reader)
    if not records:
        return {"fleiss": None, "krippendorff": None, "pairwise_cohen": None, "reason": "No readings."}
    try:
        table = ratings_table_from_records(records, categories=data.choices, level=_level(data))
    except StatisticsInputError as error:  # e.g. an answer whose choice was deactivated since
        return {"fleiss": None, "krippendorff": None, "pairwise_cohen": None, "reason": str(error)}
    return {
        "fleiss": fleiss_kappa(table, level=LEVEL),
        "krippendorff": krippendorff_alpha(table),
        "pairwise_cohen": pairwise_kappa_matrix(table),
        "reason": "",
    }


def _ai_agreement(data: _Data, by_reader: dict[str, dict[int, Reading]]) -> dict[str, Any]:
    records = _records(by_reader)
    ai_records = [
        RatingRecord(item=str(pk), rater=AI_RATER, value=value) for pk, value in sorted(data.ai_value.items())
    ]
    if not records or not ai_records:
        reason = (
            "No readings."
            if not records
            else "No case has a single AI answer (frame cases with a stored prediction)."
        )
        return {"readers": [], "n_cases_with_ai": len(ai_records), "reason": reason}
    known = [record for record in ai_records if record.value in data.choices]
    try:
        table = ratings_table_from_records(records + known, categories=data.choices, level=_level(data))
    except StatisticsInputError as error:
        return {"readers": [], "n_cases_with_ai": len(known), "reason": str(error)}
    return {
        "readers": readers_vs_reference(table, AI_RATER, level=LEVEL),
        "n_cases_with_ai": len(known),
        "reason": "",
    }


def _counts(
    data: _Data, by_reader: dict[str, dict[int, Reading]], case_ids: list[int]
) -> NDArray[np.float64]:
    """cases x choices: how many readers gave each answer (0 rows for cases the condition lacks)."""
    position = {pk: index for index, pk in enumerate(case_ids)}
    choice_index = {value: index for index, value in enumerate(data.choices)}
    counts = np.zeros((len(case_ids), len(data.choices)))
    for readings in by_reader.values():
        for pk, reading in readings.items():
            if reading.value in choice_index:
                counts[position[pk], choice_index[reading.value]] += 1
    return counts


def _fleiss_difference(
    data: _Data, with_ai: dict[str, dict[int, Reading]], without_ai: dict[str, dict[int, Reading]],
    resamples: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    case_ids = sorted({pk for readings in (*with_ai.values(), *without_ai.values()) for pk in readings})
    if not case_ids:
        return {"estimate": None, "reason": "No readings in one of the conditions."}
    counts_with = _counts(data, with_ai, case_ids)
    counts_without = _counts(data, without_ai, case_ids)

    def difference(weights: NDArray[np.float64]) -> NDArray[np.float64]:
        return fleiss_kappa_batch(counts_with, weights) - fleiss_kappa_batch(counts_without, weights)

    try:
        interval = cluster_bootstrap(
            {"difference": difference}, clusters=[data.patient_of_case[pk] for pk in case_ids],
            n_items=len(case_ids), n_resamples=resamples, seed=seed, level=LEVEL,
        )["difference"]  # fmt: skip
    except StatisticsInputError as error:
        return {"estimate": None, "reason": str(error)}
    result = jsonable(interval)
    if not math.isfinite(interval.estimate) and not interval.reason:
        result["reason"] = "Fleiss' kappa is undefined in one of the conditions (e.g. every answer the same)."
    return dict(result)


# --- MRMC ------------------------------------------------------------------------------------------


def _mrmc(data: _Data, with_ai: Condition, without_ai: Condition) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if data.positive is None:
        reason = "MRMC needs a positive class (binary question or the positive parameter)."
        return {metric: {"reason": reason} for metric in mrmc.FIGURES_OF_MERIT}
    if data.study.design == ReaderStudy.Design.SPLIT_PLOT:
        reason = (
            "Split-plot design: each reader group reads only its own case block, and studies.mrmc "
            "analyses fully crossed data (every reader reads every case in both conditions) only."
        )
        return {metric: {"reason": reason} for metric in mrmc.FIGURES_OF_MERIT}
    rows: list[dict[str, Any]] = []
    for condition in (with_ai, without_ai):
        for reader, readings in data.readings[condition.key].items():
            for pk, reading in readings.items():
                if pk not in data.truth_value:
                    continue
                rows.append(
                    {
                        "reader": reader,
                        "modality": condition.key,
                        "case": pk,
                        "truth": int(data.truth_value[pk] == data.positive),
                        "rating": rating_of(reading.value, reading.confidence, data.positive),
                        "call": float(reading.value == data.positive),
                    }
                )
    order = (with_ai.key, without_ai.key)
    for metric in mrmc.FIGURES_OF_MERIT:
        records = [{**row, "rating": row["rating"] if metric == "auc" else row["call"]} for row in rows]
        for record in records:
            record.pop("call")
        try:
            results[metric] = mrmc.mrmc_compare(
                records, figure_of_merit=metric, method="or", covariance="jackknife", level=LEVEL,
                modality_order=order,
            ).to_dict()  # fmt: skip
        except mrmc.MrmcInputError as error:
            results[metric] = {"reason": f"Not computed: {error}."}
    return results


# --- Automation bias and time ----------------------------------------------------------------------


def _switch_counts(pairs: list[tuple[str, str, str, str | None]]) -> dict[str, Any]:
    """pairs: (first answer, revised answer, reference, AI answer or None) of one reader's cases."""
    correct_before = sum(first == ref for first, _, ref, _ in pairs)
    wrong_before = len(pairs) - correct_before
    correct_to_wrong = sum(first == ref and revised != ref for first, revised, ref, _ in pairs)
    wrong_to_correct = sum(first != ref and revised == ref for first, revised, ref, _ in pairs)
    with_ai = [(first, revised, ai) for first, revised, _, ai in pairs if ai is not None]
    disagreeing = [(first, revised, ai) for first, revised, ai in with_ai if first != ai]
    switched_to_ai = sum(revised == ai for _, revised, ai in disagreeing)
    switched_away = sum(first == ai and revised != ai for first, revised, ai in with_ai)
    return {
        "n_cases": len(pairs),
        "changed": sum(first != revised for first, revised, _, _ in pairs),
        "n_correct_before": correct_before,
        "n_wrong_before": wrong_before,
        "correct_to_wrong": correct_to_wrong,
        "wrong_to_correct": wrong_to_correct,
        "correct_to_wrong_rate": correct_to_wrong / correct_before if correct_before else math.nan,
        "wrong_to_correct_rate": wrong_to_correct / wrong_before if wrong_before else math.nan,
        "n_with_ai_answer": len(with_ai),
        "n_disagreeing_with_ai_before": len(disagreeing),
        "switched_to_ai": switched_to_ai,
        "switched_to_ai_rate": switched_to_ai / len(disagreeing) if disagreeing else math.nan,
        "switched_away_from_ai": switched_away,
    }


def _automation_bias(data: _Data) -> list[dict[str, Any]]:
    results = []
    for condition in data.conditions:
        if not condition.arm.sequential or condition.phase != Phase.REVISED:
            continue
        revised_by_reader = data.readings[condition.key]
        first_by_reader = data.readings[f"{condition.arm.name} (before AI)"]
        per_reader = []
        every_pair: list[tuple[str, str, str, str | None]] = []
        for reader in data.readers:
            first, revised = first_by_reader.get(reader, {}), revised_by_reader.get(reader, {})
            pairs = [
                (first[pk].value, revised[pk].value, data.truth_value[pk], data.ai_value.get(pk))
                for pk in sorted(set(first) & set(revised))
                if pk in data.truth_value
            ]
            every_pair.extend(pairs)
            per_reader.append({"reader": reader, **_switch_counts(pairs)})
        results.append(
            {"arm": condition.arm.name, "readers": per_reader, "pooled": _switch_counts(every_pair)}
        )
    return results


def _time(by_reader: dict[str, dict[int, Reading]]) -> dict[str, Any]:
    times = np.array(
        [r.time_ms for readings in by_reader.values() for r in readings.values()], dtype=np.float64
    )
    if not times.size:
        return {
            "n": 0,
            "median_ms": None,
            "q1_ms": None,
            "q3_ms": None,
            "mean_ms": None,
            "reason": "No readings.",
        }
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {
        "n": int(times.size),
        "median_ms": median,
        "q1_ms": q1,
        "q3_ms": q3,
        "mean_ms": times.mean(),
        "reason": "",
    }


# --- The whole result ------------------------------------------------------------------------------


def _condition_result(data: _Data, condition: Condition, resamples: int, seed: int) -> dict[str, Any]:
    by_reader = data.readings[condition.key]
    ordered = {reader: by_reader[reader] for reader in data.readers if reader in by_reader}
    return {
        "key": condition.key,
        "arm": condition.arm.name,
        "phase": condition.phase,
        "assistance": condition.arm.assistance,
        "sequential": condition.arm.sequential,
        "ai_shown": condition.ai_shown,
        "n_readings": sum(len(readings) for readings in ordered.values()),
        "n_readers": len(ordered),
        "n_cases": len({pk for readings in ordered.values() for pk in readings}),
        "readers": [_reader_accuracy(data, reader, readings) for reader, readings in ordered.items()],
        "pooled": _pooled(data, ordered, resamples, seed),
        "agreement": _agreement(data, ordered),
        "ai_agreement": _ai_agreement(data, ordered) if condition.ai_shown else None,
        "time": _time(ordered),
    }


def comparison_pairs(conditions: Sequence[Condition]) -> list[tuple[Condition, Condition]]:
    """(with AI, without AI): every AI condition against every unaided arm and, for a sequential arm,
    against its own answers before the AI."""
    unaided = [c for c in conditions if c.arm.assistance == StudyArm.Assistance.UNAIDED]
    pairs: list[tuple[Condition, Condition]] = []
    for condition in conditions:
        if not condition.ai_shown:
            continue
        pairs.extend((condition, reference) for reference in unaided)
        if condition.arm.sequential:
            before = next(c for c in conditions if c.arm.pk == condition.arm.pk and c.phase == Phase.FIRST)
            pairs.append((condition, before))
    return pairs


def study_results(
    study: ReaderStudy, *, question: StudyQuestion, positive: str | None, resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON-ready results of `question` (see the module docstring and the API's schema)."""
    from studies.methods import methods_paragraph

    bootstrap_seed = study.seed if seed is None else seed
    data = _load(study, question, positive)
    reasons = []
    if positive is None:
        reasons.append(
            f"{question.task.key!r} has {len(data.choices)} choices and no positive class was given: "
            "multi-class analysis (accuracy and agreement); sensitivity, specificity, AUC and MRMC need "
            "the positive parameter."
        )
    truths = list(data.truth_value.values())
    comparisons = []
    for with_ai, without_ai in comparison_pairs(data.conditions):
        comparisons.append(
            {
                "key": f"{with_ai.key} vs {without_ai.key}",
                "with_ai": with_ai.key,
                "without_ai": without_ai.key,
                "fleiss_kappa_difference": _fleiss_difference(
                    data, data.readings[with_ai.key], data.readings[without_ai.key], resamples, bootstrap_seed
                ),
                "mrmc": _mrmc(data, with_ai, without_ai),
            }
        )
    readers = study.readers.select_related("user").order_by("position")
    return jsonable(
        {
            "study": {
                "id": study.pk,
                "name": study.name,
                "design": study.design,
                "status": study.status,
                "locked": study.status == ReaderStudy.Status.LOCKED,
                "locked_at": study.locked_at.isoformat() if study.locked_at else None,
                "washout_days": study.washout_days,
                "case_unit": study.case_unit,
            },
            "parameters": {
                "question": question.task.key,
                "positive": positive,
                "resamples": resamples,
                "seed": bootstrap_seed,
                "level": LEVEL,
            },
            "questions": [
                {
                    "key": q.task.key,
                    "name": q.task.name,
                    "choices": _choices(q),
                    "ask_confidence": q.ask_confidence,
                    "has_ai": q.model_version_id is not None,
                }
                for q in study.questions.select_related("task").order_by("order", "id")
            ],
            "question": {
                "key": question.task.key,
                "name": question.task.name,
                "kind": question.task.kind,
                "choices": data.choices,
                "positive": positive,
                "analysis": "binary" if positive is not None else "multiclass",
                "ask_confidence": question.ask_confidence,
                "rating_scale": RATING_SCALE if question.ask_confidence else BINARY_SCALE,
                "reason": reasons[0] if reasons else "",
            },
            "cases": {
                "analysed": len(data.truth_value),
                "training_excluded": StudyCase.objects.filter(study=study, is_training=True).count(),
                "without_reference": len(data.cases) - len(data.truth_value),
                "patients": len({data.patient_of_case[pk] for pk in data.truth_value}),
                "positive": sum(value == positive for value in truths) if positive is not None else None,
                "negative": sum(value != positive for value in truths) if positive is not None else None,
            },
            "readers": [
                {"reader": reader.user.username, "position": reader.position, "group": reader.group}
                for reader in readers
            ],
            "conditions": [
                _condition_result(data, condition, resamples, bootstrap_seed) for condition in data.conditions
            ],
            "comparisons": comparisons,
            "automation_bias": _automation_bias(data),
            "methods": methods_paragraph(study, resamples=resamples, seed=bootstrap_seed),
            "reasons": reasons,
        }
    )


# --- CSV export of every reading -------------------------------------------------------------------

CSV_COLUMNS = (
    "study_id", "study_name", "reader", "reader_position", "reader_group", "session_id", "arm", "assistance",
    "sequential", "period", "case_position", "case_id", "frame_id", "examination_id", "patient_pseudonym",
    "question", "phase", "value", "confidence", "time_ms", "ai_shown", "cam_visible_ms", "ai_predicted_value",
    "created_at", "updated_at", "version", "is_training_case", "reference_value", "reference_source",
)  # fmt: skip


def reading_rows(study: ReaderStudy) -> Iterator[list[str]]:
    """Every reading of the study (training cases flagged, not left out), in reader, period and case
    order; header first. Cells are spreadsheet-safe."""
    yield list(CSV_COLUMNS)
    readings = (
        Reading.objects.filter(session__reader__study=study)
        .select_related(
            "session__reader__user",
            "session__arm",
            "case__examination__patient",
            "question__task",
            "prediction",
        )
        .order_by(
            "session__reader__position",
            "session__period",
            "session__arm__order",
            "case_id",
            "question__order",
            "phase",
        )
    )
    for reading in readings.iterator(chunk_size=1000):
        session, case, key = reading.session, reading.case, reading.question.task.key
        position = session.case_order.index(case.pk) if case.pk in session.case_order else None
        row = [
            study.pk, study.name, session.reader.user.username, session.reader.position, session.reader.group,
            session.pk, session.arm.name, session.arm.assistance, session.arm.sequential, session.period,
            position, case.pk, case.frame_id, case.examination_id, case.examination.patient.pseudonym, key,
            reading.phase, reading.value, reading.confidence, reading.time_ms, reading.ai_shown,
            reading.cam_visible_ms, reading.prediction.predicted_value if reading.prediction else "",
            reading.created_at.isoformat(), reading.updated_at.isoformat(), reading.version, case.is_training,
            case.reference.get(key, ""), case.reference_source,
        ]  # fmt: skip
        yield [spreadsheet_safe(cell) for cell in row]
