"""A methods paragraph of a reader study, in the spirit of STARD 2015, generated from what the study
stores (design, readers, cases, reference standard, questions, arms, schedule, analysis), so a
coordinator can start the write-up from facts rather than a template with blanks."""

from __future__ import annotations

from collections import Counter

from records.models import ProjectMembership
from studies.models import ReaderStudy, StudyArm

ASSISTANCE_TEXT = {
    StudyArm.Assistance.UNAIDED: "without AI assistance",
    StudyArm.Assistance.PREDICTION: "with the AI's prediction shown",
    StudyArm.Assistance.PREDICTION_AND_CAM: (
        "with the AI's prediction and its class activation map (CAM) shown"
    ),
}


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _design_sentence(study: ReaderStudy, n_arms: int) -> str:
    conditions = _plural(n_arms, "reading condition")
    if study.design == ReaderStudy.Design.FULLY_CROSSED:
        text = f"Every reader read every case in each of the {conditions} (fully crossed design)"
    elif study.design == ReaderStudy.Design.CROSSOVER:
        text = (
            f"Every reader read every case in each of the {conditions}, one condition per reading "
            "period, in a counterbalanced crossover design"
        )
    else:
        text = (
            f"The readers were split into {_plural(study.reader_groups, 'group')}, each reading its own "
            f"block of cases (all cases of a patient in one block) in each of the {conditions} "
            "(split-plot design)"
        )
    if study.washout_days:
        text += f", with a washout of at least {_plural(study.washout_days, 'day')} between reading periods"
    return text + "."


def methods_paragraph(study: ReaderStudy, *, resamples: int, seed: int) -> str:
    """Plain text: design, readers, cases, reference standard, questions, arms, randomisation, analysis."""
    arms = list(study.arms.order_by("order", "id"))
    questions = list(study.questions.select_related("task").order_by("order", "id"))
    readers = list(study.readers.select_related("user"))
    roles = Counter(
        ProjectMembership.objects.filter(
            project_id=study.project_id, user_id__in=[r.user_id for r in readers]
        ).values_list("role", flat=True)
    )
    cases = list(study.cases.select_related("examination"))
    analysed = [case for case in cases if not case.is_training]
    training = len(cases) - len(analysed)
    patients = len({case.examination.patient_id for case in analysed})
    sources = sorted({case.reference_source for case in analysed if case.reference_source})
    unit = "frame" if study.case_unit == ReaderStudy.CaseUnit.FRAME else "examination"

    sentences = [f"Study design. Reader study {study.name!r}. {_design_sentence(study, len(arms))}"]
    arm_texts = []
    for arm in arms:
        text = f"{arm.name!r} ({ASSISTANCE_TEXT[StudyArm.Assistance(arm.assistance)]}"
        if arm.sequential:
            text += (
                "; sequential: an unaided answer first, then the AI was shown and a revised answer recorded"
            )
        arm_texts.append(text + ")")
    sentences.append(f"Reading conditions: {_join(arm_texts)}.")
    role_text = _join(
        [f"{count} as {ProjectMembership.Role(role).label.lower()}" for role, count in sorted(roles.items())]
    )
    sentences.append(
        f"Readers. {_plural(len(readers), 'reader')} took part"
        + (f" (project roles: {role_text})" if role_text else "")
        + "."
    )
    case_text = (
        f"Cases. {_plural(len(analysed), 'case')} (one case = one {unit}) from "
        f"{_plural(patients, 'patient')} were analysed"
    )
    if training:
        case_text += (
            f"; {_plural(training, 'training case')}, read first in every session, "
            f"{'was' if training == 1 else 'were'} excluded from the analysis"
        )
    sentences.append(case_text + ".")
    sentences.append(
        "Reference standard: "
        + (_join(sources) if sources else "recorded per case (source not stated)")
        + "; readers were blinded to it, to the other readers' answers and, outside the AI conditions, "
        "to the AI."
    )
    question_texts = []
    for question in questions:
        choices = list(
            question.task.choices.filter(is_active=True)
            .order_by("order", "id")
            .values_list("value", flat=True)
        )
        text = f"{question.task.name or question.task.key} ({', '.join(choices)})"
        if question.ask_confidence:
            text += " with a confidence rating from 1 (guess) to 5 (certain)"
        question_texts.append(text)
    sentences.append(f"Questions: {_join(question_texts)}.")
    sentences.append(
        "Randomisation. The order of the conditions was counterbalanced over the readers' positions "
        "and the case order was randomised per reader and condition from the study's seed "
        f"({study.seed}), training cases first; "
        + (
            "readers could go back to earlier cases"
            if study.allow_navigation
            else "readers could not go back to earlier cases"
        )
        + " and "
        + ("could" if study.allow_answer_changes else "could not")
        + " change a given answer."
    )
    sentences.append(
        "Analysis. Per reader and condition, sensitivity, specificity and accuracy against the "
        "reference standard with Wilson score intervals; pooled over readers also with a "
        f"patient-clustered bootstrap ({resamples} resamples, seed {seed}, percentile intervals). The "
        "AUC was estimated from a 10-point rating built from answer and confidence, with DeLong's "
        "variance. Inter-reader agreement per condition: Fleiss' kappa (Gwet's generalisation for "
        "missing ratings), Krippendorff's alpha and pairwise Cohen's kappa; the difference in Fleiss' "
        "kappa with versus without AI with the same patient-clustered bootstrap; agreement of each "
        "reader with the AI by Cohen's kappa. The AI effect on AUC, sensitivity and specificity was "
        "tested with the Obuchowski-Rockette method (jackknife covariance, Hillis denominator degrees "
        "of freedom, readers and cases random)"
        + (
            "; it was not computed for this split-plot design, which the implementation does not support"
            if study.design == ReaderStudy.Design.SPLIT_PLOT
            else ""
        )
        + ". Sequential conditions were analysed for automation bias (correct-to-wrong and "
        "wrong-to-correct changes after the AI was shown, and switches to the AI's answer). Reading "
        "time is the active time per case (idle time excluded). All intervals are two-sided 95%."
    )
    return " ".join(sentences)
