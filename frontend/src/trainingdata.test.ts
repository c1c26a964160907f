import { describe, expect, it } from "vitest";
import type { EpochRecord, Fold, FoldMetrics } from "./trainingapi";
import {
  curveSeries,
  describeAugmentation,
  describeConfig,
  describeEvaluation,
  errorSlots,
  formatMeanSd,
  formatMeasure,
  isFinished,
  measureValue,
  measuresFor,
  pooledCalibration,
  progressText,
  readNumber,
  rowShare,
  summedConfusion,
  summedHistogram,
  trainingRequest,
  type TrainingFormValues,
} from "./trainingdata";

function formValues(): TrainingFormValues {
  return {
    project: 3,
    task: 7,
    name: "  texture  ",
    labelSource: "reference",
    export: null,
    positive: "",
    config: {
      architecture: "cnn_lstm",
      input_size: 32,
      in_chans: null,
      epochs: 2,
      learning_rate: 0.003,
      batch_size: 16,
      optimizer: "adamw",
      weight_decay: 0.0001,
      imbalance: "none",
      focal_gamma: 2,
      label_smoothing: 0,
      dropout: null,
      early_stopping_patience: 0,
      pretrained_file: null,
      seed: 1,
      augmentation: {
        rotation_degrees: 10,
        horizontal_flip: true,
        vertical_flip: false,
        translate: null,
        zoom: 0,
        shear_degrees: 0,
        brightness: 0,
        contrast: 0,
        blur_probability: 0,
        blur_max_radius: 2,
      },
    },
    evaluation: { scheme: "kfold", k: 5, seed: 0, stratify: true, train: 0.7, val: 0.15, test: 0.15, field: "site", values: "", validation_fraction: 0.2 },
    synthetic: null,
  };
}

describe("the request body", () => {
  it("reads a number field as a number, or null when blank or not a number", () => {
    expect(readNumber(" 0.003 ")).toBe(0.003);
    expect(readNumber("0")).toBe(0);
    expect(readNumber("")).toBeNull();
    expect(readNumber("ten")).toBeNull();
    expect(readNumber("Infinity")).toBeNull();
  });

  it("sends the settings, leaving blank fields to the server's defaults", () => {
    const body = trainingRequest(formValues());
    expect(body).toEqual({
      project: 3,
      task: 7,
      name: "texture",
      label_source: "reference",
      positive: "",
      config: {
        architecture: "cnn_lstm",
        input_size: 32,
        epochs: 2,
        learning_rate: 0.003,
        batch_size: 16,
        optimizer: "adamw",
        weight_decay: 0.0001,
        imbalance: "none",
        label_smoothing: 0,
        early_stopping_patience: 0,
        seed: 1,
        augmentation: { rotation_degrees: 10, horizontal_flip: true, vertical_flip: false, zoom: 0, shear_degrees: 0, brightness: 0, contrast: 0, blur_probability: 0, blur_max_radius: 2 },
      },
      evaluation: { scheme: "kfold", k: 5, seed: 0, stratify: true, validation_fraction: 0.2 },
    });
    // No in_chans (the architecture's), no dropout (blank), no pretrained file, no focal gamma
    // without focal loss, no synthetic frames.
    expect(body.config).not.toHaveProperty("in_chans");
    expect(body).not.toHaveProperty("synthetic");
  });

  it("sends focal loss's gamma, the channels, the weights file and synthetic frames when chosen", () => {
    const values = formValues();
    values.config.imbalance = "focal";
    values.config.focal_gamma = 1.5;
    values.config.in_chans = 1;
    values.config.pretrained_file = "efficientnet_lite0-imagenet";
    values.synthetic = { good: "good", bad: "bad", kinds: ["blur", "brightness"], per_good_frame: 2 };
    const body = trainingRequest(values);
    expect(body.config).toMatchObject({ imbalance: "focal", focal_gamma: 1.5, in_chans: 1, pretrained_file: "efficientnet_lite0-imagenet" });
    expect(body.synthetic).toEqual({ good: "good", bad: "bad", kinds: ["blur", "brightness"], per_good_frame: 2 });
  });

  it("sends only the chosen scheme's parameters", () => {
    const values = formValues();
    values.evaluation.scheme = "lopo";
    expect(trainingRequest(values).evaluation).toEqual({ scheme: "lopo", validation_fraction: 0.2 });
    values.evaluation.scheme = "ratio";
    values.evaluation.validation_fraction = null;
    expect(trainingRequest(values).evaluation).toEqual({ scheme: "ratio", train: 0.7, val: 0.15, test: 0.15, seed: 0 });
    values.evaluation.scheme = "external";
    values.evaluation.values = " ileum, , duodenum ";
    expect(trainingRequest(values).evaluation).toEqual({ scheme: "external", field: "site", values: ["ileum", "duodenum"] });
    values.evaluation.scheme = "export";
    expect(trainingRequest(values).evaluation).toEqual({ scheme: "export" });
  });

  it("learns from an export snapshot instead of a label source", () => {
    const values = formValues();
    values.labelSource = "export";
    values.export = 12;
    const body = trainingRequest(values);
    expect(body.export).toBe(12);
    expect(body).not.toHaveProperty("label_source");
    // Without an export chosen neither is sent: the API says what is missing.
    values.export = null;
    expect(trainingRequest(values)).not.toHaveProperty("export");
    expect(trainingRequest(values)).not.toHaveProperty("label_source");
  });

  it("puts each refused field's message beside it, the rest in the list", () => {
    const slots = ["name", "config", "config.architecture", "evaluation", "evaluation.k"];
    const placed = errorSlots(
      {
        "config.architecture": ["'no_net' is not a known architecture"],
        "config.pretrained_file": ["not installed"],
        "evaluation.validation_fraction": ["between 0.05 and 0.5"],
        "evaluation.k": ["k must be at least 2"],
        dataset: ["3 labelled frames with 1 class(es)"],
        config: { epochs: ["A valid integer is required."] },
      },
      slots,
    );
    expect(Object.fromEntries(placed)).toEqual({
      "config.architecture": ["'no_net' is not a known architecture"],
      config: ["not installed", "epochs: A valid integer is required."],
      evaluation: ["between 0.05 and 0.5"],
      "evaluation.k": ["k must be at least 2"],
      "": ["3 labelled frames with 1 class(es)"],
    });
    expect(Object.fromEntries(errorSlots({ detail: "You may not train models here." }, slots))).toEqual({ "": ["You may not train models here."] });
    expect(Object.fromEntries(errorSlots("Bad gateway", slots))).toEqual({ "": ["Bad gateway"] });
  });
});

describe("a run's job and settings in words", () => {
  it("tells the job's progress in epochs, or what it waits for", () => {
    expect(progressText({ status: "running", progress_done: 6, progress_total: 8 })).toBe("6 / 8 epochs (75 %)");
    expect(progressText({ status: "queued", progress_done: 0, progress_total: null })).toBe("Waiting for a GPU worker");
    expect(progressText({ status: "running", progress_done: 0, progress_total: null })).toBe("Starting");
    expect(isFinished({ status: "running" })).toBe(false);
    expect(isFinished({ status: "queued" })).toBe(false);
    for (const status of ["succeeded", "failed", "cancelled"] as const) expect(isFinished({ status })).toBe(true);
  });

  it("describes every evaluation scheme", () => {
    expect(describeEvaluation({ scheme: "kfold", k: 4, seed: 0, stratify: true, validation_fraction: 0.2 })).toBe(
      "4-fold patient-grouped cross-validation (stratified, seed 0); 0.20 of the training patients validate for early stopping",
    );
    expect(describeEvaluation({ scheme: "kfold", k: 3, seed: 5, stratify: false })).toBe("3-fold patient-grouped cross-validation (not stratified, seed 5)");
    expect(describeEvaluation({ scheme: "lopo" })).toBe("Leave one patient out");
    expect(describeEvaluation({ scheme: "export", validation_fraction: 0.25 })).toBe(
      "The export's own split (its folds, test side or external set held out); 0.25 of the training patients validate for early stopping",
    );
    expect(describeEvaluation({ scheme: "ratio", train: 0.7, val: 0.15, test: 0.15, seed: 2 })).toBe("Patients split train / validation / test 70 / 15 / 15 % (seed 2)");
    expect(describeEvaluation({ scheme: "external", field: "site", values: ["ileum", "colon"] })).toBe("External test set: site in ileum, colon");
  });

  it("lists the augmentations in use", () => {
    expect(describeAugmentation(undefined)).toBe("none");
    expect(describeAugmentation({ rotation_degrees: 0, horizontal_flip: false })).toBe("none");
    expect(describeAugmentation({ horizontal_flip: true, rotation_degrees: 10, blur_probability: 0.2, blur_max_radius: 3 })).toBe(
      "horizontal flip, rotation ±10°, blur p 0.2 (radius ≤ 3)",
    );
  });

  it("lists the training settings with their meaning", () => {
    const rows = Object.fromEntries(
      describeConfig({ architecture: "cnn_lstm", input_size: 32, in_chans: null, imbalance: "focal", focal_gamma: 2, early_stopping_patience: 0, pretrained_file: null }),
    );
    expect(rows["Architecture"]).toBe("cnn_lstm");
    expect(rows["Input size"]).toBe("32 px");
    expect(rows["Input channels"]).toBe("as the architecture has it");
    expect(rows["Class imbalance"]).toBe("Focal loss (γ 2)");
    expect(rows["Early stopping"]).toBe("off");
    expect(rows["Pretrained weights"]).toBe("none");
    expect(rows["Augmentation"]).toBe("none");
    expect(rows["Epochs"]).toBe("—");
  });
});

const proportion = (numerator: number, denominator: number, low: number, high: number) => ({
  value: denominator ? numerator / denominator : null,
  ci_low: denominator ? low : null,
  ci_high: denominator ? high : null,
  numerator,
  denominator,
  reason: denominator ? "" : "No reference-positive cases.",
});

function binaryMetrics(overrides: Partial<FoldMetrics> = {}): FoldMetrics {
  return {
    n_frames: 4,
    n_patients: 1,
    labels: ["healthy", "neoplastic"],
    positive: "neoplastic",
    class_counts: [2, 2],
    confusion_matrix: [
      [2, 0],
      [1, 1],
    ],
    confidence_histogram: { bin_edges: [0, 0.5, 1], correct: [0, 3], wrong: [1, 0] },
    accuracy: proportion(3, 4, 0.3006, 0.9544),
    sensitivity: proportion(1, 2, 0.0945, 0.9055),
    specificity: proportion(2, 2, 0.3424, 1),
    f1: 0.6667,
    auroc: { auc: 0.75, ci_low: 0.26, ci_high: 1.24, method: "delong" },
    pr_auc: 0.8333,
    brier: 0.1875,
    calibration: { bin_edges: [0, 0.25, 0.5, 0.75, 1], mean_predicted: [0.2, 0.9], fraction_positive: [0, 1], counts: [2, 2] },
    per_patient_accuracy: { patients: ["P1"], accuracy: [0.75], n_items: [4], mean: 0.75 },
    roc_curve: { fpr: [0, 0, 1], tpr: [0, 0.5, 1], thresholds: [1, 0.9, 0.1] },
    reason: "",
    ...overrides,
  };
}

describe("metrics", () => {
  it("offers the binary measures, or what a multi-class evaluation has", () => {
    expect(measuresFor(true)).toContain("sensitivity");
    expect(measuresFor(false)).toEqual(["accuracy", "auroc", "brier", "per_patient_accuracy_mean"]);
  });

  it("reads a fold's value with its interval, as the study pages write them", () => {
    const metrics = binaryMetrics();
    expect(formatMeasure(measureValue(metrics, "accuracy"))).toBe("0.75 (0.30–0.95)");
    expect(formatMeasure(measureValue(metrics, "auroc"))).toBe("0.75 (0.26–1.24)");
    expect(formatMeasure(measureValue(metrics, "f1"))).toBe("0.67");
    expect(formatMeasure(measureValue(metrics, "per_patient_accuracy_mean"))).toBe("0.75");
    expect(measureValue(metrics, "brier")).toEqual({ value: 0.1875, low: null, high: null, reason: "" });
  });

  it("gives the reason where a value is missing", () => {
    const metrics = binaryMetrics({ sensitivity: proportion(0, 0, 0, 0), auroc: null, reason: "AUC: only one class among the held-out frames" });
    expect(measureValue(metrics, "sensitivity")).toEqual({ value: null, low: null, high: null, reason: "No reference-positive cases." });
    expect(measureValue(metrics, "auroc").reason).toBe("AUC: only one class among the held-out frames");
    expect(formatMeasure(measureValue(metrics, "auroc"))).toBe("—");
    expect(measureValue(metrics, "ppv").value).toBeNull();
  });

  it("reads a multi-class AUROC without an interval", () => {
    const metrics = binaryMetrics({ positive: null, auroc: { auc: 0.912, method: "one-vs-rest macro" } });
    expect(formatMeasure(measureValue(metrics, "auroc"))).toBe("0.91");
  });

  it("writes the mean over folds with its standard deviation", () => {
    expect(formatMeanSd({ mean: 0.8234, std: 0.0512, n_folds: 3 })).toBe("0.82 ± 0.05");
    expect(formatMeanSd({ mean: 0.8, std: null, n_folds: 1 })).toBe("0.80");
    expect(formatMeanSd({ mean: null, std: null, n_folds: 0 })).toBe("—");
    expect(formatMeanSd(undefined)).toBe("—");
  });
});

describe("pooled over folds", () => {
  const fold = (metrics: FoldMetrics): Pick<Fold, "metrics"> => ({ metrics });

  it("adds up the confusion matrices and shades each cell by its share of the true class", () => {
    const summed = summedConfusion([fold(binaryMetrics()), fold(binaryMetrics({ confusion_matrix: [[1, 1], [0, 3]] }))]);
    expect(summed).toEqual([
      [3, 1],
      [1, 4],
    ]);
    expect(rowShare(summed!, 0, 0)).toBe(0.75);
    expect(rowShare(summed!, 1, 0)).toBe(0.2);
    expect(rowShare([[0, 0]], 0, 1)).toBe(0);
    expect(summedConfusion([])).toBeNull();
    expect(summedConfusion([fold(binaryMetrics()), fold(binaryMetrics({ confusion_matrix: [[1]] }))])).toBeNull();
  });

  it("adds up the confidence histograms bin by bin", () => {
    const summed = summedHistogram([fold(binaryMetrics()), fold(binaryMetrics({ confidence_histogram: { bin_edges: [0, 0.5, 1], correct: [1, 2], wrong: [0, 4] } }))]);
    expect(summed).toEqual({ bin_edges: [0, 0.5, 1], correct: [1, 5], wrong: [1, 4] });
    expect(summedHistogram([])).toBeNull();
  });

  it("pools the reliability diagrams by bin, weighting each fold's bin by its frames", () => {
    const other = binaryMetrics({
      // Bins 1 (0.25, 0.5] and 3 (0.75, 1]: the second meets the first fold's last bin.
      calibration: { bin_edges: [0, 0.25, 0.5, 0.75, 1], mean_predicted: [0.4, 0.8], fraction_positive: [0.5, 0.5], counts: [2, 6] },
    });
    const pooled = pooledCalibration([fold(binaryMetrics()), fold(other), fold(binaryMetrics({ calibration: null }))]);
    expect(pooled.map((point) => point.count)).toEqual([2, 2, 8]);
    expect(pooled[0]).toEqual({ predicted: 0.2, observed: 0, count: 2 });
    expect(pooled[1]).toEqual({ predicted: 0.4, observed: 0.5, count: 2 });
    // (0.9 × 2 + 0.8 × 6) / 8 and (1 × 2 + 0.5 × 6) / 8.
    expect(pooled[2]!.predicted).toBeCloseTo(0.825);
    expect(pooled[2]!.observed).toBeCloseTo(0.625);
  });

  it("makes training curves per fold and for the final model, validation ones where there are any", () => {
    const epoch = (n: number, val: number | null): EpochRecord => ({
      epoch: n,
      train_loss: 1 / n,
      train_accuracy: n / 10,
      val_loss: val,
      val_accuracy: val === null ? null : 1 - val,
      seconds: 1,
      frames_per_second: 10,
    });
    const { loss, accuracy } = curveSeries([{ name: "fold_0", history: [epoch(1, 0.7), epoch(2, 0.6)] }, { name: "fold_1", history: [epoch(1, null)] }], [epoch(1, null), epoch(2, null)]);
    expect(loss.map((series) => series.key)).toEqual(["fold_0 train", "fold_0 val", "fold_1 train", "final train"]);
    expect(loss[0]!.points).toEqual([[1, 1], [2, 0.5]]);
    expect(loss[1]!.points).toEqual([[1, 0.7], [2, 0.6]]);
    expect(accuracy[1]).toMatchObject({ run: "fold_0", side: "val", points: [[1, 0.30000000000000004], [2, 0.4]] });
    expect(accuracy.at(-1)).toMatchObject({ run: "final", side: "train" });
    expect(curveSeries([], []).loss).toEqual([]);
  });
});
