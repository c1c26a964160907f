"""Results of reader studies (studies.results, studies.methods): numbers computed by hand from small
studies read through the reading service, training cases left out, automation bias, MRMC against a
direct call of studies.mrmc, and the methods paragraph."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from statsmodels.stats.proportion import proportion_confint

from inference.models import Prediction
from inference.services import model_version_activate, model_version_register
from records.models import Frame, Project
from studies import mrmc
from studies.models import ReaderStudy, ReadingSession, StudyCase, StudyQuestion
from studies.reading import Answer, reading_submit, study_lock
from studies.results import (
    comparison_pairs,
    parse_parameters,
    rating_of,
    reading_rows,
    spreadsheet_safe,
    study_conditions,
    study_results,
)
from studies.services import (
    ArmSpec,
    CaseSpec,
    QuestionSpec,
    ReaderSpec,
    study_arms_set,
    study_cases_add,
    study_create,
    study_open,
    study_questions_set,
    study_readers_set,
)
from tests.factories import ExaminationFactory, ImageFrameFactory, PatientFactory, ProjectFactory
from tests.inference_app.model_support import write_tiny_model_file
from tests.records.api_support import Role, member_of
from tests.studies.test_design import diagnosis_task

pytestmark = pytest.mark.django_db

H, N = "healthy", "neoplastic"
# Reference of the analysed cases in creation order; one more (training) case is neoplastic.
TRUTH = [H, N, H, N]


class ResultsStudy:
    """Four analysed frame cases of four patients (healthy, neoplastic, healthy, neoplastic), one
    neoplastic training case, two readers (alice, bob)."""

    def __init__(self, *, arms: list[ArmSpec], design: str = "fully_crossed", washout_days: int = 0) -> None:
        self.project: Project = ProjectFactory.create()
        self.task = diagnosis_task(self.project)
        self.frames: list[Frame] = []
        for label in [*TRUTH, N]:
            examination = ExaminationFactory.create(
                patient=PatientFactory.create(project=self.project),
                reference_label=label,
                reference_source="histopathology",
            )
            self.frames.append(ImageFrameFactory.create(examination=examination))
        self.study = study_create(
            project=self.project, name="results", design=design, created_by=None, seed=11,
            washout_days=washout_days,
        )  # fmt: skip
        study_questions_set(study=self.study, questions=[QuestionSpec(task=self.task)])
        study_arms_set(study=self.study, arms=arms)
        study_cases_add(
            study=self.study,
            cases=[CaseSpec(frame_id=frame.pk) for frame in self.frames[:4]]
            + [CaseSpec(frame_id=self.frames[4].pk, is_training=True)],
        )
        self.alice = member_of(self.project, Role.READER, username="alice")
        self.bob = member_of(self.project, Role.READER, username="bob")
        study_readers_set(study=self.study, readers=[ReaderSpec(user=self.alice), ReaderSpec(user=self.bob)])

    def with_model(self, tmp_path: Path) -> ResultsStudy:
        path = write_tiny_model_file(tmp_path / "diagnosis.safetensors", tasks={"diagnosis": [H, N]})
        version = model_version_register(
            project=self.project, task=self.task, uploaded_path=path, name="d1", created_by=None
        )
        model_version_activate(model_version=version)
        return self

    def open(self) -> ResultsStudy:
        study_open(study=self.study)
        self.study.refresh_from_db()
        return self

    def case_ids(self) -> list[int]:
        return [StudyCase.objects.get(study=self.study, frame=frame).pk for frame in self.frames[:4]]

    def session(self, arm: str, user: Any) -> ReadingSession:
        return ReadingSession.objects.get(reader__user=user, arm__name=arm)

    def read(
        self, arm: str, user: Any, answers: list[tuple[str, int, int]],
        revised: list[str] | None = None,
    ) -> None:  # fmt: skip
        """Answer every case of the session in its order: `answers[i]` (value, confidence, time_ms)
        for analysed case i; the training case gets a wrong 'healthy' answer; in a sequential arm
        `revised[i]` after the AI."""
        session = self.session(arm, user)
        by_case = dict(zip(self.case_ids(), range(4), strict=True))
        for position, case_id in enumerate(session.case_order):
            index = by_case.get(case_id)
            value, confidence, time_ms = (H, 5, 99_000) if index is None else answers[index]
            reading_submit(
                session=session, position=position,
                answer=Answer(question_key="diagnosis", value=value, confidence=confidence, time_ms=time_ms),
            )  # fmt: skip
            if revised is not None:
                reading_submit(
                    session=session,
                    position=position,
                    answer=Answer(
                        question_key="diagnosis", value=H if index is None else revised[index], confidence=3,
                        time_ms=500, phase="revised", ai_shown=True,
                    ),
                )  # fmt: skip

    def results(self, **parameters: Any) -> dict[str, Any]:
        question, positive, resamples, seed = parse_parameters(
            self.study, question_key=parameters.get("question"), positive=parameters.get("positive"),
            resamples=parameters.get("resamples", 200), seed=parameters.get("seed"),
        )  # fmt: skip
        return study_results(self.study, question=question, positive=positive, resamples=resamples, seed=seed)


UNAIDED_ANSWERS = {
    # alice: TN, TP, FP, FN; bob: all right.
    "alice": [(H, 4, 1000), (N, 3, 2000), (N, 2, 3000), (H, 2, 4000)],
    "bob": [(H, 5, 5000), (N, 5, 6000), (H, 3, 7000), (N, 4, 8000)],
}
CAM_ANSWERS = {
    # alice: all right; bob: TN, TP, FP, TP.
    "alice": [(H, 4, 1000), (N, 4, 1000), (H, 3, 1000), (N, 3, 1000)],
    "bob": [(H, 4, 1000), (N, 5, 1000), (N, 2, 1000), (N, 4, 1000)],
}
ARMS = [ArmSpec(name="unaided", assistance="unaided"), ArmSpec(name="cam", assistance="prediction_and_cam")]


@pytest.fixture
def crossed() -> ResultsStudy:
    setup = ResultsStudy(arms=ARMS).open()
    for arm, answers in (("unaided", UNAIDED_ANSWERS), ("cam", CAM_ANSWERS)):
        setup.read(arm, setup.alice, answers["alice"])
        setup.read(arm, setup.bob, answers["bob"])
    return setup


def condition(results: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in results["conditions"] if c["key"] == key)


def wilson(numerator: int, denominator: int) -> tuple[float, float]:
    low, high = proportion_confint(numerator, denominator, alpha=0.05, method="wilson")
    return float(low), float(high)


def test_the_rating_is_a_ten_point_scale_from_answer_and_confidence() -> None:
    assert [rating_of(N, c, N) for c in range(1, 6)] == [6.0, 7.0, 8.0, 9.0, 10.0]
    assert [rating_of(H, c, N) for c in range(1, 6)] == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert rating_of(N, None, N) == 1.0 and rating_of(H, None, N) == 0.0


def test_accuracy_per_reader_and_pooled_per_arm_without_the_training_case(crossed: ResultsStudy) -> None:
    results = crossed.results()
    assert results["question"]["positive"] == N and results["question"]["analysis"] == "binary"
    assert results["cases"] == {
        "analysed": 4, "training_excluded": 1, "without_reference": 0, "patients": 4,
        "positive": 2, "negative": 2,
    }  # fmt: skip
    assert results["study"]["locked"] is False

    unaided = condition(results, "unaided")
    assert unaided["n_readings"] == 8 and unaided["n_cases"] == 4  # the training case is not counted
    alice, bob = unaided["readers"]
    assert alice["reader"] == "alice"
    outcomes = ("true_positive", "false_negative", "true_negative", "false_positive")
    assert [alice[name] for name in outcomes] == [1, 1, 1, 1]
    assert alice["sensitivity"]["value"] == 0.5
    assert (alice["sensitivity"]["ci_low"], alice["sensitivity"]["ci_high"]) == pytest.approx(wilson(1, 2))
    assert alice["accuracy"]["numerator"] == 2 and alice["accuracy"]["denominator"] == 4
    assert bob["sensitivity"]["value"] == 1.0 and bob["specificity"]["value"] == 1.0
    # alice's ratings: healthy cases 2 and 7, neoplastic cases 8 and 4 -> 3 of 4 pairs ordered right.
    assert alice["auc"]["auc"] == pytest.approx(0.75)
    assert alice["auc"]["method"] == "delong"
    assert bob["auc"]["auc"] == 1.0
    assert alice["roc"]["fpr"][-1] == 1.0 and alice["roc"]["tpr"][-1] == 1.0
    assert alice["roc"]["thresholds"][0] is None  # +inf

    pooled = unaided["pooled"]
    assert [pooled[name] for name in outcomes] == [3, 1, 3, 1]
    assert pooled["sensitivity"]["value"] == 0.75 and pooled["accuracy"]["value"] == 0.75
    assert (pooled["sensitivity"]["ci_low"], pooled["sensitivity"]["ci_high"]) == pytest.approx(wilson(3, 4))
    bootstrap = pooled["bootstrap"]["sensitivity"]
    assert bootstrap["estimate"] == 0.75 and bootstrap["n_resamples"] == 200 and bootstrap["n_clusters"] == 4
    assert bootstrap["seed"] == 11  # the study's seed by default

    cam = condition(results, "cam")
    assert cam["pooled"]["sensitivity"]["value"] == 1.0
    assert cam["pooled"]["specificity"]["value"] == 0.75
    assert cam["pooled"]["accuracy"]["value"] == 0.875

    # Time per case: unaided 1..8 s, cam 1 s each; the training case's 99 s is left out.
    assert unaided["time"]["median_ms"] == 4500.0 and unaided["time"]["mean_ms"] == 4500.0
    assert unaided["time"]["q1_ms"] == 2750.0 and unaided["time"]["q3_ms"] == 6250.0
    assert cam["time"]["median_ms"] == 1000.0 and cam["time"]["n"] == 8


def test_agreement_per_arm_and_the_kappa_difference(crossed: ResultsStudy) -> None:
    results = crossed.results()
    unaided, cam = condition(results, "unaided"), condition(results, "cam")
    # Unaided: two cases agreed, two split, answers half healthy: kappa (0.5 - 0.5) / 0.5 = 0.
    assert unaided["agreement"]["fleiss"]["kappa"] == pytest.approx(0.0)
    # cam: three cases agreed, prevalence 3/8 healthy: pe = 17/32, kappa = (3/4 - 17/32) / (15/32) = 7/15.
    assert cam["agreement"]["fleiss"]["kappa"] == pytest.approx(7 / 15)
    assert cam["agreement"]["pairwise_cohen"]["raters"] == ["alice", "bob"]
    assert cam["agreement"]["pairwise_cohen"]["kappa"][0][1] == pytest.approx(0.5)
    assert cam["agreement"]["krippendorff"]["alpha"] is not None
    assert unaided["ai_agreement"] is None
    assert cam["ai_agreement"]["readers"] == [] and "AI" in cam["ai_agreement"]["reason"]

    (comparison,) = results["comparisons"]
    assert comparison["key"] == "cam vs unaided"
    difference = comparison["fleiss_kappa_difference"]
    assert difference["estimate"] == pytest.approx(7 / 15)
    assert difference["n_clusters"] == 4 and difference["seed"] == 11
    assert difference["ci_low"] <= difference["estimate"] <= difference["ci_high"]
    # Same seed, same interval; another seed, another one.
    again = crossed.results()["comparisons"][0]["fleiss_kappa_difference"]
    other = crossed.results(seed=12)["comparisons"][0]["fleiss_kappa_difference"]
    assert again == difference and other["seed"] == 12


def test_mrmc_matches_a_direct_call_of_studies_mrmc(crossed: ResultsStudy) -> None:
    results = crossed.results()
    auc = results["comparisons"][0]["mrmc"]["auc"]
    case_ids = crossed.case_ids()
    records = []
    for modality, answers in (("cam", CAM_ANSWERS), ("unaided", UNAIDED_ANSWERS)):
        for reader, reader_answers in answers.items():
            for case_id, truth, (value, confidence, _) in zip(case_ids, TRUTH, reader_answers, strict=True):
                records.append(
                    {"reader": reader, "modality": modality, "case": case_id, "truth": int(truth == N),
                     "rating": rating_of(value, confidence, N)}
                )  # fmt: skip
    direct = mrmc.mrmc_compare(records, figure_of_merit="auc", modality_order=("cam", "unaided")).to_dict()
    assert auc["effect"] == pytest.approx(direct["effect"])
    assert auc["rrrc"]["p_value"] == direct["rrrc"]["p_value"] or (
        auc["rrrc"]["p_value"] is None and math.isnan(direct["rrrc"]["p_value"])
    )
    assert auc["modalities"] == ["cam", "unaided"]
    # Both readers order every cam pair right; unaided alice 3 of 4 pairs, bob all.
    assert auc["figures_of_merit"] == [pytest.approx((1.0, 1.0)), pytest.approx((0.75, 1.0))]
    assert auc["effect"] == pytest.approx(0.125)
    sensitivity = results["comparisons"][0]["mrmc"]["sensitivity"]
    assert sensitivity["modality_means"] == pytest.approx((1.0, 0.75))
    assert sensitivity["threshold"] == 1.0


def test_split_plot_gives_a_reason_instead_of_mrmc() -> None:
    setup = ResultsStudy(arms=ARMS, design="crossover", washout_days=14).open()
    results = setup.results()
    assert results["comparisons"][0]["mrmc"]["auc"]["reason"].startswith("Not computed")  # no readings yet
    ReaderStudy.objects.filter(pk=setup.study.pk).update(design="split_plot")
    setup.study.refresh_from_db()
    reason = setup.results()["comparisons"][0]["mrmc"]["sensitivity"]["reason"]
    assert "Split-plot" in reason


def test_a_multiclass_question_without_positive_gets_accuracy_and_agreement_only(
    crossed: ResultsStudy,
) -> None:
    StudyQuestion.objects.get(study=crossed.study).task.choices.create(value="other", label="Other", order=2)
    results = crossed.results()
    assert results["question"]["analysis"] == "multiclass" and results["question"]["positive"] is None
    alice = condition(results, "unaided")["readers"][0]
    assert alice["accuracy"]["value"] == 0.5 and "sensitivity" not in alice
    assert condition(results, "unaided")["pooled"]["accuracy"]["value"] == 0.75
    assert "reason" in results["comparisons"][0]["mrmc"]["auc"]
    assert condition(results, "cam")["agreement"]["fleiss"]["kappa"] == pytest.approx(7 / 15)
    # With a positive class it is dichotomised again.
    assert crossed.results(positive=N)["question"]["analysis"] == "binary"


def test_automation_bias_and_agreement_with_the_ai_in_a_sequential_arm(tmp_path: Path) -> None:
    setup = ResultsStudy(arms=[ArmSpec(name="seq", assistance="prediction_and_cam", sequential=True)])
    setup.with_model(tmp_path).open()
    question = StudyQuestion.objects.get(study=setup.study)
    # The AI: right on three cases, wrong (neoplastic) on the second healthy one.
    for frame, value in zip(setup.frames, [H, N, N, N, N], strict=True):
        Prediction.objects.update_or_create(
            frame=frame, model_version=question.model_version, task=setup.task,
            defaults={"probabilities": [0.2, 0.8] if value == N else [0.8, 0.2], "predicted_value": value,
                      "confidence": 0.8},
        )  # fmt: skip
    # alice: wrong->right on case 1 and right->wrong on case 2, both switches to the AI.
    setup.read("seq", setup.alice, [(H, 3, 1), (H, 3, 1), (H, 3, 1), (N, 3, 1)], revised=[H, N, N, N])
    # bob: right first; then right->wrong on case 3, away from the AI.
    setup.read("seq", setup.bob, [(H, 3, 1), (N, 3, 1), (H, 3, 1), (N, 3, 1)], revised=[H, N, H, H])
    results = setup.results()
    assert [c["key"] for c in results["conditions"]] == ["seq", "seq (before AI)"]
    assert (
        condition(results, "seq")["ai_shown"] is True
        and condition(results, "seq (before AI)")["ai_shown"] is False
    )
    (bias,) = results["automation_bias"]
    alice, bob = bias["readers"]
    assert alice == {
        "reader": "alice", "n_cases": 4, "changed": 2, "n_correct_before": 3, "n_wrong_before": 1,
        "correct_to_wrong": 1, "wrong_to_correct": 1, "correct_to_wrong_rate": pytest.approx(1 / 3),
        "wrong_to_correct_rate": 1.0, "n_with_ai_answer": 4, "n_disagreeing_with_ai_before": 2,
        "switched_to_ai": 2, "switched_to_ai_rate": 1.0, "switched_away_from_ai": 0,
    }  # fmt: skip
    assert bob["correct_to_wrong"] == 1 and bob["wrong_to_correct"] == 0
    assert bob["wrong_to_correct_rate"] is None  # no wrong first answer
    assert bob["n_disagreeing_with_ai_before"] == 1 and bob["switched_to_ai"] == 0
    assert bob["switched_away_from_ai"] == 1
    assert bias["pooled"]["correct_to_wrong"] == 2 and bias["pooled"]["n_cases"] == 8

    # Agreement with the AI after it was shown: alice agrees on all four (kappa 1), bob on two.
    ai = condition(results, "seq")["ai_agreement"]
    assert ai["n_cases_with_ai"] == 4
    assert [k["rater_a"] for k in ai["readers"]] == ["alice", "bob"]
    assert ai["readers"][0]["kappa"] == pytest.approx(1.0)
    assert ai["readers"][1]["observed_agreement"] == pytest.approx(0.5)
    # The only comparison is the arm against its own answers before the AI.
    (comparison,) = results["comparisons"]
    assert comparison["key"] == "seq vs seq (before AI)"
    assert comparison["mrmc"]["specificity"]["modality_means"] == pytest.approx((0.75, 1.0))


def test_conditions_and_comparisons_of_mixed_arms() -> None:
    setup = ResultsStudy(arms=[*ARMS, ArmSpec(name="seq", assistance="prediction", sequential=True)])
    conditions = study_conditions(list(setup.study.arms.order_by("order", "id")))
    assert [c.key for c in conditions] == ["unaided", "cam", "seq", "seq (before AI)"]
    pairs = [(a.key, b.key) for a, b in comparison_pairs(conditions)]
    assert pairs == [("cam", "unaided"), ("seq", "unaided"), ("seq", "seq (before AI)")]


def test_results_say_when_the_study_is_locked(crossed: ResultsStudy) -> None:
    study_lock(study=crossed.study)
    crossed.study.refresh_from_db()
    results = crossed.results()
    assert results["study"]["locked"] is True and results["study"]["locked_at"]


def test_the_methods_paragraph_states_the_study_facts() -> None:
    setup = ResultsStudy(arms=ARMS, design="crossover", washout_days=21).open()
    methods = setup.results(resamples=500, seed=5)["methods"]
    assert "2 readers" in methods and "2 as reader (medical expert)" in methods
    assert (
        "4 cases" in methods
        and "4 patients" in methods
        and "1 training case, read first in every session, was excluded" in methods
    )
    assert "washout of at least 21 days" in methods and "crossover" in methods
    assert "histopathology" in methods and "healthy, neoplastic" in methods
    assert "500 resamples, seed 5" in methods and "seed (11)" in methods
    for name in ("Wilson", "DeLong", "Fleiss", "Krippendorff", "Cohen", "Obuchowski-Rockette"):
        assert name in methods
    assert "'unaided' (without AI assistance)" in methods


def test_parameters_are_validated(crossed: ResultsStudy) -> None:
    from studies.results import ResultsInputError

    for parameters, field in (
        ({"question": "nope"}, "question"),
        ({"positive": "maybe"}, "positive"),
        ({"resamples": "10"}, "resamples"),
        ({"resamples": "20000"}, "resamples"),
        ({"resamples": "many"}, "resamples"),
        ({"seed": "-1"}, "seed"),
    ):
        with pytest.raises(ResultsInputError) as error:
            crossed.results(**parameters)
        assert error.value.field == field


def test_csv_rows_cover_every_reading_and_are_spreadsheet_safe(crossed: ResultsStudy) -> None:
    rows = list(reading_rows(crossed.study))
    header, body = rows[0], rows[1:]
    assert len(body) == 2 * 2 * 5  # readers x arms x cases (training included, flagged)
    record = dict(zip(header, body[0], strict=True))
    assert record["reader"] == "alice" and record["arm"] in ("unaided", "cam")
    assert record["question"] == "diagnosis" and record["phase"] == "first"
    training = [
        dict(zip(header, row, strict=True)) for row in body if row[header.index("is_training_case")] == "True"
    ]
    assert len(training) == 4 and {row["time_ms"] for row in training} == {"99000"}
    assert all(row["reference_value"] == N for row in training)
    assert "patient_pseudonym" in header and all(
        dict(zip(header, row, strict=True))["patient_pseudonym"] for row in body
    )
    assert [spreadsheet_safe(v) for v in ("=1+1", "+x", "-2", "@a", "\tt", "\rr", "ok", None)] == [
        "'=1+1", "'+x", "'-2", "'@a", "'\tt", "'\rr", "ok", "",
    ]  # fmt: skip
