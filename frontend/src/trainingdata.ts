// The training pages' pure side: the settings they offer (kept in step with the server by
// tests/frontend/test_training_choices.py), the request body built from the form's values, where a
// refusal's messages go, how a run's settings, job and metrics read, and the data behind its plots
// (pooled over folds). trainingdata.test.ts checks them.

import type { LineSeries } from "./plots";
import { MISSING, errorMessages, formatEstimate, formatNumber } from "./studyformat";
import type { AggregatedMetric, EpochRecord, Fold, FoldMetrics, Job, JobStatus, SummaryEntry, TrainingRequest } from "./trainingapi";

/** Roles that may train and promote models (inference.apis.MODEL_MANAGER_ROLES; a superuser is "admin"). */
export const TRAINING_ROLES: ReadonlySet<string> = new Set(["coordinator", "admin"]);

/** TrainingRun.LabelSource, with the model's labels. */
export const LABEL_SOURCES = [
  { value: "adjudicated", label: "Adjudicated expert labels (else the annotators' agreed label)" },
  { value: "majority", label: "Majority of the annotators (ties left out)" },
  { value: "reference", label: "Reference standard (e.g. histopathology)" },
  { value: "export", label: "An export snapshot's frames and labels" },
] as const;

/** Suggested architectures: timm names and CLEAR's own (any other known name is accepted too). */
export const ARCHITECTURES = ["efficientnet_b0", "tf_efficientnetv2_s", "resnet34", "efficientnet_lite0", "cnn_lstm", "resnet10t"] as const;

/** inference.ml.training.OPTIMIZERS, IMBALANCE and SYNTHETIC_KINDS. */
export const OPTIMIZERS = ["adamw", "adam", "sgd"] as const;
export const IMBALANCE = [
  { value: "none", label: "None" },
  { value: "class_weights", label: "Class weights in the loss" },
  { value: "weighted_sampling", label: "Weighted sampling" },
  { value: "focal", label: "Focal loss" },
] as const;
export const SYNTHETIC_KINDS = [
  { value: "blur", label: "Gaussian blur" },
  { value: "brightness", label: "Brightness change" },
  { value: "blur_brightness", label: "Both" },
] as const;

/** inference.training.EVALUATION_SCHEMES and, for a run that learns from an export, the export's own
 * split; annotations.splits.EXTERNAL_FIELDS. */
export const EVALUATION_SCHEMES = [
  { value: "kfold", label: "Patient-grouped k-fold cross-validation" },
  { value: "lopo", label: "Leave one patient out" },
  { value: "ratio", label: "Train / validation / test by patients" },
  { value: "external", label: "External test set (by site, device, cohort or examination)" },
  { value: "export", label: "The export's own split (runs that learn from an export)" },
] as const;
export const EXTERNAL_FIELDS = ["site", "device", "cohort", "examination"] as const;

// --- The request -----------------------------------------------------------------------------------

/** A number field's value: null when blank (the server's default then) or not a number. */
export function readNumber(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : null;
}

export interface AugmentationValues {
  rotation_degrees: number | null;
  horizontal_flip: boolean;
  vertical_flip: boolean;
  translate: number | null;
  zoom: number | null;
  shear_degrees: number | null;
  brightness: number | null;
  contrast: number | null;
  blur_probability: number | null;
  blur_max_radius: number | null;
}

/** The form's values; a null number is a blank field, left to the server's default. */
export interface TrainingFormValues {
  project: number;
  task: number;
  name: string;
  /** One of LABEL_SOURCES; "export" learns from `export` instead. */
  labelSource: string;
  /** The export snapshot to learn from (label source "export"). */
  export: number | null;
  /** "" lets the server choose (the last of two classes; none for more: multi-class). */
  positive: string;
  config: {
    architecture: string;
    input_size: number | null;
    /** null: as the architecture has it. */
    in_chans: number | null;
    epochs: number | null;
    learning_rate: number | null;
    batch_size: number | null;
    optimizer: string;
    weight_decay: number | null;
    imbalance: string;
    focal_gamma: number | null;
    label_smoothing: number | null;
    dropout: number | null;
    early_stopping_patience: number | null;
    /** A name from /api/pretrained-weights/, or null for none. */
    pretrained_file: string | null;
    seed: number | null;
    augmentation: AugmentationValues;
  };
  evaluation: {
    scheme: string;
    k: number | null;
    seed: number | null;
    stratify: boolean;
    train: number | null;
    val: number | null;
    test: number | null;
    field: string;
    /** Comma-separated values of `field` that make the external set. */
    values: string;
    validation_fraction: number | null;
  };
  /** Synthetic bad-quality frames, or null for none. */
  synthetic: { good: string; bad: string; kinds: string[]; per_good_frame: number | null } | null;
}

/** The entries whose value is set: blank fields are left out, so the server's defaults apply. */
function present(entries: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== null && value !== undefined));
}

/** POST /api/training-runs/'s body from the form's values. Every check is the server's: what it
 * refuses comes back as a 400 naming the field. */
export function trainingRequest(values: TrainingFormValues): TrainingRequest {
  const { augmentation, ...config } = values.config;
  const evaluation = values.evaluation;
  const schemes: Record<string, Record<string, unknown>> = {
    kfold: { k: evaluation.k, seed: evaluation.seed, stratify: evaluation.stratify },
    lopo: {},
    export: {},
    ratio: { train: evaluation.train, val: evaluation.val, test: evaluation.test, seed: evaluation.seed },
    external: {
      field: evaluation.field,
      values: evaluation.values
        .split(",")
        .map((value) => value.trim())
        .filter(Boolean),
    },
  };
  const body: TrainingRequest = {
    project: values.project,
    task: values.task,
    name: values.name.trim(),
    config: present({
      ...config,
      // The focusing parameter means something for focal loss only.
      focal_gamma: config.imbalance === "focal" ? config.focal_gamma : null,
      augmentation: present({ ...augmentation }),
    }),
    evaluation: present({ scheme: evaluation.scheme, ...(schemes[evaluation.scheme] ?? {}), validation_fraction: evaluation.validation_fraction }),
    positive: values.positive,
  };
  // An export brings its own labels: the API takes the export instead of a label source (without
  // either it says what is missing).
  if (values.labelSource !== "export") body.label_source = values.labelSource;
  else if (values.export !== null) body.export = values.export;
  if (values.synthetic) body.synthetic = present({ ...values.synthetic });
  return body;
}

/** Where each message of a refusal goes: beside the field its key names (the longest of `slots`
 * that is the key or a dotted prefix of it: "evaluation.k" goes to "evaluation.k" where the form
 * has it, else to "evaluation"), else under "" (the list below the form). */
export function errorSlots(body: unknown, slots: readonly string[]): Map<string, string[]> {
  const placed = new Map<string, string[]>();
  const add = (slot: string, messages: string[]) => placed.set(slot, [...(placed.get(slot) ?? []), ...messages]);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    add("", errorMessages(body));
    return placed;
  }
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    const slot = slots
      .filter((candidate) => key === candidate || key.startsWith(`${candidate}.`))
      .sort((a, b) => b.length - a.length)[0];
    add(slot ?? "", errorMessages(value));
  }
  return placed;
}

// --- A run's settings and job ------------------------------------------------------------------------

export const FINISHED_STATUSES: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "cancelled"]);

export function isFinished(job: Pick<Job, "status">): boolean {
  return FINISHED_STATUSES.has(job.status);
}

/** "6 / 8 epochs (75 %)", or what the job waits for. */
export function progressText(job: Pick<Job, "status" | "progress_done" | "progress_total">): string {
  if (job.progress_total === null || job.progress_total === 0) {
    return job.status === "queued" ? "Waiting for a GPU worker" : job.status === "running" ? "Starting" : "";
  }
  const share = Math.round((100 * job.progress_done) / job.progress_total);
  return `${job.progress_done} / ${job.progress_total} epochs (${share} %)`;
}

/** How the held-out patients were chosen, in words. */
export function describeEvaluation(evaluation: Record<string, unknown>): string {
  const seed = evaluation.seed !== undefined ? `seed ${String(evaluation.seed)}` : "";
  let text: string;
  switch (evaluation.scheme) {
    case "kfold":
      text = `${String(evaluation.k)}-fold patient-grouped cross-validation (${[evaluation.stratify === false ? "not stratified" : "stratified", seed].filter(Boolean).join(", ")})`;
      break;
    case "lopo":
      text = "Leave one patient out";
      break;
    case "export":
      text = "The export's own split (its folds, test side or external set held out)";
      break;
    case "ratio": {
      const percent = (value: unknown) => `${Math.round(Number(value) * 100)}`;
      text = `Patients split train / validation / test ${percent(evaluation.train)} / ${percent(evaluation.val)} / ${percent(evaluation.test)} %${seed ? ` (${seed})` : ""}`;
      break;
    }
    case "external": {
      const values = Array.isArray(evaluation.values) ? evaluation.values.map(String).join(", ") : "";
      text = `External test set: ${String(evaluation.field)} in ${values || MISSING}`;
      break;
    }
    default:
      text = String(evaluation.scheme);
  }
  const fraction = evaluation.validation_fraction;
  return typeof fraction === "number" ? `${text}; ${formatNumber(fraction)} of the training patients validate for early stopping` : text;
}

const AUGMENTATION_NAMES: [string, string, string][] = [
  ["rotation_degrees", "rotation ±", "°"],
  ["translate", "translate ±", ""],
  ["zoom", "zoom ±", ""],
  ["shear_degrees", "shear ±", "°"],
  ["brightness", "brightness ±", ""],
  ["contrast", "contrast ±", ""],
  ["blur_probability", "blur p ", ""],
];

/** "horizontal flip, rotation ±10°, blur p 0.2 (radius ≤ 2)", or "none". */
export function describeAugmentation(augmentation: Record<string, unknown> | undefined): string {
  if (!augmentation) return "none";
  const parts: string[] = [];
  if (augmentation.horizontal_flip) parts.push("horizontal flip");
  if (augmentation.vertical_flip) parts.push("vertical flip");
  for (const [key, name, unit] of AUGMENTATION_NAMES) {
    const value = Number(augmentation[key] ?? 0);
    if (value) parts.push(`${name}${value}${unit}${key === "blur_probability" ? ` (radius ≤ ${String(augmentation.blur_max_radius ?? 2)})` : ""}`);
  }
  return parts.length > 0 ? parts.join(", ") : "none";
}

/** The run's training settings as [term, value] rows, in the form's order. */
export function describeConfig(config: Record<string, unknown>): [string, string][] {
  const text = (value: unknown) => (value === null || value === undefined || value === "" ? MISSING : String(value));
  const imbalance = IMBALANCE.find((option) => option.value === config.imbalance)?.label ?? text(config.imbalance);
  return [
    ["Architecture", text(config.architecture)],
    ["Input size", `${text(config.input_size)} px`],
    ["Input channels", config.in_chans === null || config.in_chans === undefined ? "as the architecture has it" : text(config.in_chans)],
    ["Epochs", text(config.epochs)],
    ["Learning rate", text(config.learning_rate)],
    ["Batch size", text(config.batch_size)],
    ["Optimizer", text(config.optimizer)],
    ["Weight decay", text(config.weight_decay)],
    ["Class imbalance", config.imbalance === "focal" ? `${imbalance} (γ ${text(config.focal_gamma)})` : imbalance],
    ["Label smoothing", text(config.label_smoothing)],
    ["Dropout", text(config.dropout)],
    ["Early stopping", Number(config.early_stopping_patience) > 0 ? `after ${text(config.early_stopping_patience)} epochs without a better validation loss` : "off"],
    ["Pretrained weights", config.pretrained_file ? text(config.pretrained_file) : "none"],
    ["Seed", text(config.seed)],
    ["Augmentation", describeAugmentation(config.augmentation as Record<string, unknown> | undefined)],
  ];
}

// --- Metrics -------------------------------------------------------------------------------------------

export const MEASURE_NAMES: Record<AggregatedMetric, string> = {
  accuracy: "Accuracy",
  sensitivity: "Sensitivity",
  specificity: "Specificity",
  ppv: "PPV",
  npv: "NPV",
  f1: "F1",
  auroc: "AUROC",
  pr_auc: "PR-AUC",
  brier: "Brier",
  per_patient_accuracy_mean: "Per-patient accuracy (mean)",
};

/** The fold table's columns: every binary measure, or what a multi-class evaluation has. */
export function measuresFor(binary: boolean): AggregatedMetric[] {
  return binary
    ? ["accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "auroc", "pr_auc", "brier", "per_patient_accuracy_mean"]
    : ["accuracy", "auroc", "brier", "per_patient_accuracy_mean"];
}

export interface MeasureValue {
  value: number | null;
  low: number | null;
  high: number | null;
  /** Why the value is missing, where the server says. */
  reason: string;
}

const PROPORTIONS = new Set(["accuracy", "sensitivity", "specificity", "ppv", "npv"]);

/** One fold's value of a measure, with its interval where it has one (Wilson; DeLong for AUROC). */
export function measureValue(metrics: FoldMetrics, measure: AggregatedMetric): MeasureValue {
  const none = (reason = ""): MeasureValue => ({ value: null, low: null, high: null, reason: reason || metrics.reason || "" });
  if (PROPORTIONS.has(measure)) {
    const proportion = metrics[measure as "accuracy"];
    if (!proportion) return none();
    return { value: proportion.value, low: proportion.ci_low, high: proportion.ci_high, reason: proportion.value === null ? proportion.reason || "" : "" };
  }
  if (measure === "auroc") {
    const auc = metrics.auroc;
    if (!auc || auc.auc === null) return none();
    return { value: auc.auc, low: auc.ci_low ?? null, high: auc.ci_high ?? null, reason: "" };
  }
  if (measure === "per_patient_accuracy_mean") {
    const perPatient = metrics.per_patient_accuracy;
    return perPatient ? { value: perPatient.mean, low: null, high: null, reason: "" } : none();
  }
  const value = metrics[measure];
  return typeof value === "number" ? { value, low: null, high: null, reason: "" } : none();
}

/** "0.83 (0.44–0.97)" where there is an interval, else "0.83"; MISSING without a value. */
export function formatMeasure(value: MeasureValue): string {
  return formatEstimate(value.value, value.low, value.high);
}

/** "0.82 ± 0.05": the mean over folds and its standard deviation (the mean alone from one fold). */
export function formatMeanSd(entry: SummaryEntry | undefined): string {
  if (!entry) return MISSING;
  const mean = formatNumber(entry.mean);
  if (mean === MISSING) return MISSING;
  const sd = formatNumber(entry.std);
  return sd === MISSING ? mean : `${mean} ± ${sd}`;
}

// --- Pooled over folds, for the plots -------------------------------------------------------------------

/** The folds' confusion matrices added up (rows: the true class); null without folds or when their
 * shapes differ. */
export function summedConfusion(folds: readonly Pick<Fold, "metrics">[]): number[][] | null {
  const matrices = folds.map((fold) => fold.metrics.confusion_matrix);
  const first = matrices[0];
  if (!first) return null;
  if (matrices.some((matrix) => matrix.length !== first.length || matrix.some((row, i) => row.length !== first[i]!.length))) return null;
  return first.map((row, i) => row.map((_, j) => matrices.reduce((sum, matrix) => sum + matrix[i]![j]!, 0)));
}

/** How dark a confusion matrix cell is: its share of the true class's frames (0 for an empty row). */
export function rowShare(matrix: readonly (readonly number[])[], row: number, column: number): number {
  const cells = matrix[row] ?? [];
  const total = cells.reduce((sum, count) => sum + count, 0);
  return total > 0 ? (cells[column] ?? 0) / total : 0;
}

/** The folds' confidence histograms added up, bin by bin (the bins are the same in every fold). */
export function summedHistogram(folds: readonly Pick<Fold, "metrics">[]): { bin_edges: number[]; correct: number[]; wrong: number[] } | null {
  const histograms = folds.map((fold) => fold.metrics.confidence_histogram).filter(Boolean);
  const first = histograms[0];
  if (!first) return null;
  const add = (side: "correct" | "wrong") => first[side].map((_, bin) => histograms.reduce((sum, histogram) => sum + (histogram[side][bin] ?? 0), 0));
  return { bin_edges: first.bin_edges, correct: add("correct"), wrong: add("wrong") };
}

export interface CalibrationPoint {
  /** Mean predicted probability of the positive class in the bin. */
  predicted: number;
  /** Share of the bin's frames that are positive. */
  observed: number;
  count: number;
}

/** The folds' reliability diagrams pooled: per probability bin, the frames of every fold together
 * (count-weighted means of the folds' bin means). A fold lists only its non-empty bins, so each is
 * put back in its bin by where its mean prediction falls (sklearn's rule: bin i holds (e_i, e_i+1]). */
export function pooledCalibration(folds: readonly Pick<Fold, "metrics">[]): CalibrationPoint[] {
  const bins = new Map<number, { predicted: number; observed: number; count: number }>();
  for (const fold of folds) {
    const curve = fold.metrics.calibration;
    if (!curve) continue;
    const inner = curve.bin_edges.slice(1, -1);
    curve.mean_predicted.forEach((predicted, index) => {
      const count = curve.counts[index] ?? 0;
      const bin = inner.filter((edge) => edge < predicted).length;
      const sums = bins.get(bin) ?? { predicted: 0, observed: 0, count: 0 };
      sums.predicted += predicted * count;
      sums.observed += (curve.fraction_positive[index] ?? 0) * count;
      sums.count += count;
      bins.set(bin, sums);
    });
  }
  return [...bins.entries()]
    .sort(([a], [b]) => a - b)
    .filter(([, sums]) => sums.count > 0)
    .map(([, sums]) => ({ predicted: sums.predicted / sums.count, observed: sums.observed / sums.count, count: sums.count }));
}

export interface CurveSeries extends LineSeries {
  /** The fold's name, or "final" for the model trained on every development frame. */
  run: string;
  side: "train" | "val";
}

/** Training curves by epoch, per fold and for the final model: the loss, and the accuracy, on the
 * training frames and (where early stopping kept some back) the validation frames. */
export function curveSeries(folds: readonly Pick<Fold, "name" | "history">[], finalHistory: readonly EpochRecord[]): { loss: CurveSeries[]; accuracy: CurveSeries[] } {
  const runs = [...folds.map((fold) => ({ run: fold.name, history: fold.history })), ...(finalHistory.length > 0 ? [{ run: "final", history: finalHistory }] : [])];
  const loss: CurveSeries[] = [];
  const accuracy: CurveSeries[] = [];
  for (const { run, history } of runs) {
    loss.push({ key: `${run} train`, run, side: "train", points: history.map((epoch) => [epoch.epoch, epoch.train_loss] as const) });
    accuracy.push({ key: `${run} train`, run, side: "train", points: history.map((epoch) => [epoch.epoch, epoch.train_accuracy] as const) });
    if (history.some((epoch) => epoch.val_loss !== null)) {
      loss.push({ key: `${run} val`, run, side: "val", points: history.map((epoch) => [epoch.epoch, epoch.val_loss] as const) });
      accuracy.push({ key: `${run} val`, run, side: "val", points: history.map((epoch) => [epoch.epoch, epoch.val_accuracy] as const) });
    }
  }
  return { loss, accuracy };
}
