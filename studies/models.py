"""Reader studies: the design a coordinator sets up (questions, arms, cases with their reference
standard, readers) and the reading sessions generated from it when the study opens.

A study is edited while it is a draft. Opening it freezes the design and generates one
`ReadingSession` per reader and arm, each with its own randomised case order drawn from the
study's stored seed, so the schedule can be reproduced and audited. Readers answer in `Reading`s;
locking the study makes them immutable.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from annotations.models import LabelTask
from records.models import Examination, Frame, Project


class ReaderStudy(models.Model):
    class Design(models.TextChoices):
        FULLY_CROSSED = "fully_crossed", "Fully crossed: every reader reads every case in every arm"
        CROSSOVER = "crossover", "Counterbalanced crossover: one arm per period, washout between periods"
        SPLIT_PLOT = "split_plot", "Split-plot: each reader group reads its own case block in every arm"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft: the design can be edited"
        OPEN = "open", "Open: readers read, the design is frozen"
        LOCKED = "locked", "Locked: readings are immutable"

    class CaseUnit(models.TextChoices):
        FRAME = "frame", "A case is one frame"
        EXAMINATION = "examination", "A case is a whole examination"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reader_studies")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    design = models.CharField(max_length=20, choices=Design.choices)
    case_unit = models.CharField(max_length=20, choices=CaseUnit.choices, default=CaseUnit.FRAME)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    washout_days = models.PositiveSmallIntegerField(
        default=0,
        help_text="Days a reader must wait after finishing one period before starting the next.",
    )
    reader_groups = models.PositiveSmallIntegerField(
        default=1, help_text="Split-plot: number of reader groups (and case blocks); otherwise 1."
    )
    seed = models.BigIntegerField(help_text="Seed of every random choice of the schedule (reproducible).")
    allow_navigation = models.BooleanField(
        default=False, help_text="Whether a reader may go back to earlier cases of a session."
    )
    allow_answer_changes = models.BooleanField(
        default=False, help_text="Whether a reader may change an answer already given."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="readerstudy_unique_name"),
            models.CheckConstraint(
                condition=Q(design="split_plot", reader_groups__gte=2) | Q(reader_groups=1),
                name="readerstudy_groups_only_in_split_plot",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class StudyQuestion(models.Model):
    """A label task the readers answer for every case, optionally with a confidence rating."""

    study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="questions")
    task = models.ForeignKey(LabelTask, on_delete=models.PROTECT, related_name="study_questions")
    ask_confidence = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)
    # The AI the readers see, frozen when the study opens (services.study_open): the task's active
    # model version then and, for a gated task, its gate's version and diagnostic values. A model
    # promoted or retrained while the study runs changes nothing the readers are shown, so every
    # reader of an AI arm sees the same model. Null: no AI arm, or the task had no active model.
    model_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    gate_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    gate_diagnostic_values = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "task"], name="studyquestion_unique_task")]
        ordering = ["study", "order", "id"]

    def __str__(self) -> str:
        return f"{self.study} / {self.task_id}"


class StudyArm(models.Model):
    """A reading condition: what AI assistance the reader gets. A sequential arm asks an unaided
    answer first, then shows the AI and asks a revised answer (both are kept)."""

    class Assistance(models.TextChoices):
        UNAIDED = "unaided", "Unaided: no model output"
        PREDICTION = "prediction", "AI prediction"
        PREDICTION_AND_CAM = "prediction_and_cam", "AI prediction and CAM"

    study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=100)
    assistance = models.CharField(max_length=20, choices=Assistance.choices)
    sequential = models.BooleanField(
        default=False, help_text="Unaided answer first, then the AI is shown and a revised answer asked."
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="studyarm_unique_name"),
            models.CheckConstraint(
                condition=Q(sequential=False) | ~Q(assistance="unaided"),
                name="studyarm_sequential_shows_ai",
            ),
        ]
        ordering = ["study", "order", "id"]

    def __str__(self) -> str:
        return self.name


class StudyCase(models.Model):
    """One case: a frame (its examination kept for patient clustering) or a whole examination, with
    the reference standard per question task ({task key: choice value}) that readers never see.
    Training cases are read first in every session and left out of every analysis."""

    study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="cases")
    frame = models.ForeignKey(Frame, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    examination = models.ForeignKey(Examination, on_delete=models.PROTECT, related_name="+")
    reference = models.JSONField(default=dict, help_text="Reference standard: {task key: choice value}.")
    reference_source = models.CharField(max_length=100, blank=True, help_text="e.g. histopathology.")
    is_training = models.BooleanField(default=False)
    block = models.PositiveSmallIntegerField(
        default=0, help_text="Split-plot: the case block (read by reader group of the same number)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "frame"], condition=Q(frame__isnull=False), name="studycase_unique_frame"
            ),
            models.UniqueConstraint(
                fields=["study", "examination"],
                condition=Q(frame__isnull=True),
                name="studycase_unique_examination",
            ),
        ]
        ordering = ["study", "id"]

    def __str__(self) -> str:
        return f"{self.study} / case {self.pk}"


class StudyReader(models.Model):
    """A reader assigned by the coordinator. `position` (0, 1, ...) counterbalances the order of the
    arms; `group` is the split-plot reader group."""

    study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="readers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()
    group = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "user"], name="studyreader_unique_user"),
            models.UniqueConstraint(fields=["study", "position"], name="studyreader_unique_position"),
        ]
        ordering = ["study", "position"]

    def __str__(self) -> str:
        return f"{self.study} / reader {self.user_id}"


class ReadingSession(models.Model):
    """One reader's reading of one arm: its period (crossover order) and its case order (training
    cases first), fixed when the study opens. Period n > 1 starts only after the reader finished
    period n - 1 and the washout has passed."""

    reader = models.ForeignKey(StudyReader, on_delete=models.CASCADE, related_name="sessions")
    arm = models.ForeignKey(StudyArm, on_delete=models.CASCADE, related_name="sessions")
    period = models.PositiveSmallIntegerField()
    case_order = models.JSONField(help_text="StudyCase ids in reading order.")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reader", "arm"], name="readingsession_unique_arm"),
        ]
        ordering = ["reader", "period", "arm"]

    def __str__(self) -> str:
        return f"{self.reader} / {self.arm} (period {self.period})"


class Reading(models.Model):
    """A reader's answer to one question for one case in one session.

    `phase` is `first` in every arm; a sequential arm adds a `revised` answer given after the AI was
    shown, and the first answer can no longer change once the AI was revealed for the case. What the
    reader was exposed to is kept with the answer: whether AI output was shown, how long the CAM was
    visible, and which prediction was shown. Every change is in the audit history."""

    class Phase(models.TextChoices):
        FIRST = "first", "First answer"
        REVISED = "revised", "Revised answer after the AI was shown (sequential arms)"

    session = models.ForeignKey(ReadingSession, on_delete=models.CASCADE, related_name="readings")
    case = models.ForeignKey(StudyCase, on_delete=models.CASCADE, related_name="readings")
    question = models.ForeignKey(StudyQuestion, on_delete=models.CASCADE, related_name="readings")
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.FIRST)
    value = models.SlugField(max_length=50)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    time_ms = models.PositiveIntegerField(help_text="Active reading time of the case (idle time excluded).")
    ai_shown = models.BooleanField(default=False)
    cam_visible_ms = models.PositiveIntegerField(default=0)
    prediction = models.ForeignKey(
        "inference.Prediction", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "case", "question", "phase"], name="reading_unique_answer"
            )
        ]
        ordering = ["session", "case", "question", "phase"]

    def __str__(self) -> str:
        return f"{self.session} / case {self.case_id} / {self.phase}"
