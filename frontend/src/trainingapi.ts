// The training-runs API as the training pages use it: the answers' types and one call each
// (inference/training_apis.py; metric shapes from inference/evaluation.py, the statistics package's
// Proportion, AucResult, CalibrationCurve and PerPatientAccuracy; jobs/apis.py for the job).

import { all, get, request, type ModelVersion } from "./api";

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface Job {
  id: number;
  kind: string;
  project: number | null;
  status: JobStatus;
  /** Fraction done in [0, 1]; null while the total is unknown. */
  progress: number | null;
  progress_done: number;
  progress_total: number | null;
  message: string;
  error: string;
  result: Record<string, unknown>;
  attempts: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  cancel_requested_at: string | null;
}

/** A proportion with its Wilson interval; null value (and a reason) where its denominator is 0. */
export interface Proportion {
  value: number | null;
  ci_low: number | null;
  ci_high: number | null;
  numerator: number;
  denominator: number;
  reason?: string;
}

/** Binary: DeLong's AucResult; multi-class: the one-vs-rest macro AUROC without an interval. */
export interface AucEstimate {
  auc: number | null;
  ci_low?: number | null;
  ci_high?: number | null;
  method?: string;
}

export interface Calibration {
  bin_edges: number[];
  /** Per non-empty bin, in bin order. */
  mean_predicted: number[];
  fraction_positive: number[];
  counts: number[];
}

export interface PerPatientAccuracy {
  patients: string[];
  accuracy: number[];
  n_items: number[];
  mean: number;
}

export interface ConfidenceHistogram {
  bin_edges: number[];
  correct: number[];
  wrong: number[];
}

/** One evaluation (a fold's held-out patients): inference.evaluation.evaluate. */
export interface FoldMetrics {
  n_frames: number;
  n_patients: number;
  labels: string[];
  positive: string | null;
  class_counts: number[];
  /** Rows: the true class, columns: the predicted one, in `labels` order. */
  confusion_matrix: number[][];
  confidence_histogram: ConfidenceHistogram;
  accuracy?: Proportion;
  sensitivity?: Proportion;
  specificity?: Proportion;
  ppv?: Proportion;
  npv?: Proportion;
  f1?: number | null;
  auroc?: AucEstimate | null;
  pr_auc?: number | null;
  brier?: number | null;
  calibration?: Calibration | null;
  per_patient_accuracy?: PerPatientAccuracy | null;
  roc_curve?: { fpr: number[]; tpr: number[]; thresholds: number[] } | null;
  recall_per_class?: Record<string, Proportion>;
  reason?: string;
}

export interface EpochRecord {
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  val_loss: number | null;
  val_accuracy: number | null;
  seconds: number;
  frames_per_second: number;
}

export interface Fold {
  name: string;
  n_train: number;
  n_val: number;
  n_test: number;
  n_synthetic: number;
  test_patients: string[];
  best_epoch: number;
  stopped_early: boolean;
  history: EpochRecord[];
  metrics: FoldMetrics;
}

/** The headline metrics averaged over folds (inference.evaluation.AGGREGATED). */
export const AGGREGATED = [
  "accuracy",
  "sensitivity",
  "specificity",
  "ppv",
  "npv",
  "f1",
  "auroc",
  "pr_auc",
  "brier",
  "per_patient_accuracy_mean",
] as const;
export type AggregatedMetric = (typeof AGGREGATED)[number];

export interface SummaryEntry {
  mean: number | null;
  /** Sample standard deviation; null with fewer than two folds. */
  std: number | null;
  n_folds: number;
}

export type RunSummary = { [metric in AggregatedMetric]?: SummaryEntry } & {
  /** Every fold's per-patient accuracies, pooled (the leave-one-patient-out distribution). */
  per_patient_accuracy?: { patients: string[]; accuracy: number[] };
};

/** inference.training.training_dataset's summary, or export_dataset's for a run that learns from an
 * export (no ties or non-choices there; frames of the export not found in the project instead). */
export interface DatasetSummary {
  frames: number;
  patients: number;
  per_class: Record<string, number>;
  unlabelled: number;
  ties?: number;
  not_a_choice?: number;
  export?: number;
  export_format?: string;
  missing_frames?: number;
}

export interface TrainingRun {
  id: number;
  project: number;
  task: number;
  task_key: string;
  name: string;
  label_source: string;
  config: Record<string, unknown>;
  evaluation: Record<string, unknown>;
  positive: string;
  synthetic: Record<string, unknown>;
  labels: string[];
  /** The export snapshot the run learnt from, else null. */
  export_snapshot: number | null;
  dataset_snapshot_id: string;
  dataset_summary: DatasetSummary;
  folds: Fold[];
  summary: RunSummary;
  history: EpochRecord[];
  model_version: number | null;
  job: Job;
  created_by: number | null;
  created_at: string;
}

/** POST /api/training-runs/'s body. */
export interface TrainingRequest {
  project: number;
  task: number;
  name: string;
  /** Either a label source or an export snapshot to learn from. */
  label_source?: string;
  export?: number;
  config: Record<string, unknown>;
  evaluation: Record<string, unknown>;
  positive: string;
  synthetic?: Record<string, unknown>;
}

/** The parts of an export snapshot (exports/apis.py) the form offers one by. */
export interface ExportSnapshot {
  id: number;
  projects: number[];
  /** The label task's key. */
  task: string;
  label_source: string;
  split: Record<string, unknown>;
  format: string;
  status: string;
  snapshot_hash: string;
  created_at: string;
}

export interface ActivatedVersion extends ModelVersion {
  rescore_job: Job | null;
}

export const trainingApi = {
  /** Newest first. */
  list: async (project: number) => (await all<TrainingRun>(`/api/training-runs/?project=${project}`)).reverse(),
  get: (id: number) => get<TrainingRun>(`/api/training-runs/${id}/`),
  /** 202 with the queued run; a refusal throws ApiError with the 400's body (every refused field). */
  create: (body: TrainingRequest) => request<TrainingRun>("POST", "/api/training-runs/", body),
  cancel: (id: number) => request<TrainingRun>("POST", `/api/training-runs/${id}/cancel/`),
  pretrainedWeights: () => get<string[]>("/api/pretrained-weights/"),
  /** The project's ready export snapshots, newest first. */
  exports: (project: number) => all<ExportSnapshot>(`/api/exports/?project=${project}&status=ready`),
  modelVersion: (id: number) => get<ModelVersion>(`/api/model-versions/${id}/`),
  activate: (id: number, rescore: boolean) =>
    request<ActivatedVersion>("POST", `/api/model-versions/${id}/activate/`, { rescore }),
  job: (id: number) => get<Job>(`/api/jobs/${id}/`),
};
