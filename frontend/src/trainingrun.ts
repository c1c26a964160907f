// A training run's page (/training/{project}/{run}): its job (status, progress, message, error,
// Stop), its settings and dataset, the evaluation on held-out patients (a table per fold with the
// mean ± SD over folds; training curves, ROC, calibration, confusion matrix, per-patient accuracy and
// confidence histogram drawn from the same numbers) and the candidate model with "Promote to
// active". The page polls the run every 2 s while its job is queued or running, and stops when the
// job finishes or the page is left (dispose).

import { ApiError, type ModelVersion, type Project } from "./api";
import { h, mount, type Child } from "./dom";
import { pageState } from "./panels";
import {
  colour,
  dotStripGeometry,
  lineChartGeometry,
  rocGeometry,
  stackedBarsGeometry,
  type PlotFrame,
} from "./plots";
import { MISSING, formatNumber } from "./studyformat";
import { axes, svg } from "./svg";
import { trainingApi, type Fold, type Job, type TrainingRun } from "./trainingapi";
import {
  LABEL_SOURCES,
  MEASURE_NAMES,
  curveSeries,
  describeConfig,
  describeEvaluation,
  formatMeanSd,
  formatMeasure,
  isFinished,
  measureValue,
  measuresFor,
  pooledCalibration,
  progressText,
  rowShare,
  summedConfusion,
  summedHistogram,
  type CurveSeries,
} from "./trainingdata";
import { jobBadge, managedProject } from "./trainingform";

const POLL_MS = 2000;

export class TrainingRunPage {
  private disposed = false;
  private timer = 0;
  /** What the results and model sections were last drawn from: redrawn only when it changes. */
  private drawnFrom = "";
  private readonly title = h("span", { class: "run-name" });
  private readonly badge = h("span", { class: "run-badge" });
  private readonly jobBox = h("section", { class: "run-job" });
  private readonly resultsBox = h("section", { class: "run-results" });
  private readonly modelBox = h("section", { class: "run-model" });
  private readonly settingsBox = h("div", { class: "run-settings-box" });
  private modelSection: ModelSection | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly ids: { project: number; run: number },
  ) {}

  async start(): Promise<void> {
    mount(this.root, h("p", { class: "muted" }, "Loading the training run…"));
    const project = await managedProject(this.ids.project, this.root);
    if (!project || this.disposed) return;
    let run: TrainingRun;
    try {
      run = await trainingApi.get(this.ids.run);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        mount(this.root, pageState("not-found", "Not found", "This training run does not exist, or you cannot see it."));
        return;
      }
      throw error;
    }
    if (this.disposed) return;
    if (run.project !== project.id) {
      mount(this.root, pageState("not-found", "Not found", "This training run belongs to another project."));
      return;
    }
    this.layout(project, run);
    this.show(run);
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.timer);
    this.modelSection?.dispose();
  }

  private layout(project: Project, run: TrainingRun): void {
    document.title = `${run.name} · Model training · CLEAR`;
    const source = LABEL_SOURCES.find((option) => option.value === run.label_source)?.label ?? run.label_source;
    mount(
      this.root,
      h("p", {}, h("a", { href: `/training/${project.id}`, "data-route": "", class: "back-to-training" }, `← Model training · ${project.name}`)),
      h("h1", { class: "run-title" }, this.title, " ", this.badge),
      h(
        "p",
        { class: "muted run-facts" },
        [`task ${run.task_key}`, `labels: ${source}`, `created ${new Date(run.created_at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}`].join(" · "),
      ),
      this.jobBox,
      h("h2", {}, "Settings and dataset"),
      this.settingsBox,
      h("h2", {}, "Evaluation on held-out patients"),
      this.resultsBox,
      h("h2", {}, "Model"),
      this.modelBox,
    );
    mount(this.settingsBox, settingsSummary(run), datasetSummary(run));
  }

  /** Draws what changed and polls again while the job is not finished. */
  private show(run: TrainingRun): void {
    this.title.textContent = run.name;
    mount(this.badge, jobBadge(run.job.status));
    this.renderJob(run.job);
    const key = `${run.job.status}:${run.folds.length}:${run.model_version ?? ""}`;
    if (key !== this.drawnFrom) {
      this.drawnFrom = key;
      mount(this.resultsBox, results(run));
      this.modelSection?.dispose();
      this.modelSection = new ModelSection(this.modelBox, run);
    }
    if (!isFinished(run.job)) this.timer = window.setTimeout(() => void this.poll(), POLL_MS);
  }

  private async poll(): Promise<void> {
    if (this.disposed) return;
    let run: TrainingRun;
    try {
      run = await trainingApi.get(this.ids.run);
    } catch {
      // A lost answer is asked again at the next tick.
      if (!this.disposed) this.timer = window.setTimeout(() => void this.poll(), POLL_MS);
      return;
    }
    if (!this.disposed) this.show(run);
  }

  private renderJob(job: Job): void {
    const share = job.progress === null ? 0 : Math.round(job.progress * 100);
    const running = !isFinished(job);
    const stop = h("button", { class: "stop-run", type: "button", disabled: job.cancel_requested_at !== null }, job.cancel_requested_at ? "Stopping…" : "Stop");
    const notice = h("span", { class: "stop-notice small", role: "status" });
    stop.addEventListener("click", () => void this.stop(stop, notice));
    mount(
      this.jobBox,
      h(
        "div",
        { class: "progress-wrap job-progress-wrap" },
        h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": share }, h("div", { class: "progress-fill", style: { width: `${share}%` } })),
        h("span", { class: "job-progress small", "data-done": job.progress_done, "data-total": job.progress_total ?? "" }, progressText(job)),
      ),
      job.message ? h("p", { class: "job-message small" }, job.message) : null,
      job.error ? h("pre", { class: "job-error error small" }, job.error) : null,
      running ? h("div", { class: "row" }, stop, notice) : null,
    );
  }

  private async stop(button: HTMLButtonElement, notice: HTMLElement): Promise<void> {
    button.disabled = true;
    try {
      const run = await trainingApi.cancel(this.ids.run);
      window.clearTimeout(this.timer);
      if (!this.disposed) this.show(run);
    } catch (error) {
      notice.className = "stop-notice small error";
      notice.textContent = error instanceof Error ? error.message : String(error);
      button.disabled = false;
    }
  }
}

// --- Settings and dataset ---------------------------------------------------------------------------------

function definitionList(className: string, rows: ([string, Child] | null)[]): HTMLElement {
  return h(
    "dl",
    { class: `design-summary ${className}` },
    rows.filter((row): row is [string, Child] => row !== null).map(([term, value]) => [h("dt", {}, term), h("dd", { "data-term": term }, value)]),
  );
}

function settingsSummary(run: TrainingRun): HTMLElement {
  const synthetic = run.synthetic as { good?: string; bad?: string; kinds?: string[]; per_good_frame?: number };
  return h(
    "div",
    {},
    h("h3", {}, "Settings"),
    definitionList("run-settings", [
      ...describeConfig(run.config),
      ["Evaluation", describeEvaluation(run.evaluation)],
      ["Classes", run.labels.join(", ")],
      ["Positive class", run.positive || "none (multi-class)"],
      ["Synthetic bad frames", synthetic.good ? `${synthetic.per_good_frame ?? 1} per '${synthetic.good}' training frame as '${synthetic.bad}' (${(synthetic.kinds ?? []).join(", ")})` : "none"],
    ]),
  );
}

function datasetSummary(run: TrainingRun): HTMLElement {
  const summary = run.dataset_summary;
  const perClass = Object.entries(summary.per_class ?? {});
  return h(
    "div",
    {},
    h("h3", {}, "Dataset (frozen when the run was made)"),
    definitionList("run-dataset", [
      ["Frames", h("span", { "data-frames": summary.frames }, String(summary.frames))],
      ["Patients", h("span", { "data-patients": summary.patients }, String(summary.patients))],
      ["Per class", perClass.length ? perClass.map(([label, count]) => `${label} ${count}`).join(", ") : MISSING],
      run.export_snapshot !== null
        ? ["Export snapshot", `#${run.export_snapshot}${summary.export_format ? ` (${summary.export_format})` : ""}; ${summary.missing_frames ?? 0} of its frames not in the project`]
        : null,
      ["Left out", run.export_snapshot !== null ? `${summary.unlabelled} without a label` : `${summary.unlabelled} without a label, ${summary.ties ?? 0} ties, ${summary.not_a_choice ?? 0} not a choice of the task`],
      ["Snapshot", h("code", { class: "snapshot-id" }, run.dataset_snapshot_id)],
    ]),
  );
}

// --- Results ------------------------------------------------------------------------------------------------

function results(run: TrainingRun): Child[] {
  if (run.folds.length === 0) {
    const text = isFinished(run.job) ? "No fold was evaluated." : "No fold has finished yet: each appears here as soon as it is evaluated.";
    return [h("p", { class: "muted no-folds" }, text)];
  }
  const binary = run.positive !== "";
  const reasons = [...new Set(run.folds.map((fold) => fold.metrics.reason ?? "").filter(Boolean))];
  return [
    h(
      "p",
      { class: "muted small" },
      binary
        ? `Binary metrics with '${run.positive}' as the positive class. Proportions with 95 % Wilson intervals, AUROC with its DeLong interval (not clipped to [0, 1]); the last row is the mean ± SD over folds.`
        : "Multi-class evaluation: accuracy with its 95 % Wilson interval, recall per class, one-vs-rest macro AUROC; the last row is the mean ± SD over folds.",
    ),
    foldTable(run, binary),
    reasons.length > 0 ? h("ul", { class: "reasons" }, reasons.map((reason) => h("li", {}, reason))) : null,
    h("div", { class: "training-plots" }, curvePlots(run), binary ? rocPlot(run.folds) : null, binary ? calibrationPlot(run.folds) : null, confusionTable(run), perPatientPlot(run), confidencePlot(run.folds)),
  ];
}

function valueCell(text: string, reason: string, attrs: Record<string, unknown>): HTMLElement {
  if (text === MISSING) return h("td", { ...attrs, class: "missing" }, MISSING, reason ? h("span", { class: "reason small" }, ` ${reason}`) : null);
  return h("td", attrs, text);
}

function foldTable(run: TrainingRun, binary: boolean): HTMLElement {
  const measures = measuresFor(binary);
  const classes = binary ? [] : run.labels;
  const head = ["Fold", "Train", "Val", "Test", "Synthetic", "Held-out patients", "Best epoch", ...measures.map((measure) => MEASURE_NAMES[measure]), ...classes.map((label) => `Recall ${label}`)];
  const total = (pick: (fold: Fold) => number) => run.folds.reduce((sum, fold) => sum + pick(fold), 0);
  return h(
    "table",
    { class: "data fold-table" },
    h("thead", {}, h("tr", {}, head.map((title) => h("th", {}, title)))),
    h(
      "tbody",
      {},
      run.folds.map((fold) =>
        h(
          "tr",
          { "data-fold": fold.name },
          h("th", { scope: "row" }, fold.name),
          h("td", { "data-measure": "n_train" }, fold.n_train),
          h("td", { "data-measure": "n_val" }, fold.n_val),
          h("td", { "data-measure": "n_test" }, fold.n_test),
          h("td", { "data-measure": "n_synthetic" }, fold.n_synthetic),
          h("td", { "data-measure": "test_patients", title: fold.test_patients.join(", ") }, fold.test_patients.length),
          h("td", { "data-measure": "best_epoch" }, fold.best_epoch, fold.stopped_early ? h("span", { class: "muted small" }, " (stopped early)") : null),
          measures.map((measure) => {
            const value = measureValue(fold.metrics, measure);
            return valueCell(formatMeasure(value), value.reason, { "data-measure": measure, "data-value": value.value ?? "" });
          }),
          classes.map((label) => {
            const recall = fold.metrics.recall_per_class?.[label];
            const value = { value: recall?.value ?? null, low: recall?.ci_low ?? null, high: recall?.ci_high ?? null, reason: recall?.reason ?? "" };
            return valueCell(formatMeasure(value), value.reason, { "data-measure": `recall:${label}`, "data-value": value.value ?? "" });
          }),
        ),
      ),
      h(
        "tr",
        { class: "pooled", "data-fold": "summary" },
        h("th", { scope: "row" }, `Mean ± SD (${run.folds.length} folds)`),
        h("td", {}),
        h("td", {}),
        h("td", { "data-measure": "n_test" }, total((fold) => fold.n_test)),
        h("td", {}),
        h("td", { "data-measure": "test_patients" }, total((fold) => fold.test_patients.length)),
        h("td", {}),
        measures.map((measure) => {
          const entry = run.summary[measure];
          const text = formatMeanSd(entry);
          const reason = run.summary[measure] ? "" : isFinished(run.job) ? "" : "when every fold is done";
          return valueCell(text, reason, { "data-measure": measure, "data-mean": entry?.mean ?? "", "data-sd": entry?.std ?? "", title: entry ? `over ${entry.n_folds} folds` : "" });
        }),
        classes.map(() => h("td", {})),
      ),
    ),
  );
}

// --- Plots ------------------------------------------------------------------------------------------------------

const CURVE_FRAME: PlotFrame = { width: 340, height: 240, margin: { top: 12, right: 12, bottom: 42, left: 52 } };
const SQUARE_FRAME: PlotFrame = { width: 300, height: 300, margin: { top: 12, right: 12, bottom: 42, left: 48 } };

function figure(className: string, plot: SVGElement, caption: Child[]): HTMLElement {
  return h("figure", { class: `plot ${className}` }, plot, h("figcaption", {}, ...caption));
}

function plotSvg(name: string, frame: { width: number; height: number }, label: string, ...children: (SVGElement | SVGElement[] | null)[]): SVGElement {
  return svg("svg", { class: `training-plot ${name}`, "data-plot": name, viewBox: `0 0 ${frame.width} ${frame.height}`, width: frame.width, height: frame.height, role: "img", "aria-label": label }, ...children);
}

/** Each fold's colour (the final model's after them), as in every plot and legend of the page. */
function runColours(run: TrainingRun): Map<string, string> {
  return new Map([...run.folds.map((fold, index) => [fold.name, colour(index)] as const), ["final", colour(run.folds.length)]]);
}

function legend(items: [string, string, string?][]): HTMLElement {
  return h(
    "ul",
    { class: "legend" },
    items.map(([label, stroke, className]) => h("li", {}, h("span", { class: `swatch ${className ?? ""}`, style: { background: stroke } }), ` ${label}`)),
  );
}

function curvePlot(name: string, title: string, yLabel: string, series: CurveSeries[], colours: Map<string, string>, fixedY: boolean): HTMLElement {
  const geometry = lineChartGeometry(series, CURVE_FRAME, { integerX: true, ...(fixedY ? { yDomain: [0, 1] } : { includeZeroY: true }) });
  const plot = plotSvg(
    name,
    CURVE_FRAME,
    title,
    axes(geometry.area, geometry.xTicks, geometry.yTicks, "epoch", yLabel, CURVE_FRAME.height),
    geometry.lines.map((line, index) => {
      const curve = series[index]!;
      return svg("path", { class: `curve curve-${curve.side}`, d: line.path, stroke: colours.get(curve.run) ?? colour(0), "data-run": curve.run, "data-side": curve.side });
    }),
  );
  return figure(`curve-figure ${name}-figure`, plot, [h("strong", {}, title), h("span", { class: "muted small" }, " solid: training frames; dashed: validation frames")]);
}

function curvePlots(run: TrainingRun): Child {
  const { loss, accuracy } = curveSeries(run.folds, run.history);
  const colours = runColours(run);
  const runs = [...run.folds.map((fold) => fold.name), ...(run.history.length > 0 ? ["final"] : [])];
  return h(
    "div",
    { class: "curves" },
    curvePlot("loss", "Loss by epoch", "loss", loss, colours, false),
    curvePlot("accuracy", "Accuracy by epoch", "accuracy", accuracy, colours, true),
    legend(runs.map((name) => [name === "final" ? "final model (all development frames)" : name, colours.get(name)!])),
  );
}

function rocPlot(folds: Fold[]): HTMLElement {
  const drawn = folds.filter((fold) => fold.metrics.roc_curve);
  const geometry = rocGeometry(
    drawn.map((fold) => ({ key: fold.name, fpr: fold.metrics.roc_curve!.fpr, tpr: fold.metrics.roc_curve!.tpr })),
    SQUARE_FRAME,
  );
  const index = new Map(folds.map((fold, position) => [fold.name, position]));
  const plot = plotSvg(
    "roc",
    SQUARE_FRAME,
    "ROC curve per fold",
    axes(geometry.area, geometry.xTicks, geometry.yTicks, "1 − specificity", "sensitivity", SQUARE_FRAME.height),
    svg("path", { class: "diagonal", d: geometry.diagonal }),
    geometry.curves.map((curve) => svg("path", { class: "roc-curve", d: curve.path, stroke: colour(index.get(curve.key) ?? 0), "data-fold": curve.key })),
  );
  return figure("roc-figure", plot, [
    h("strong", {}, "ROC curve per fold (held-out patients)"),
    h(
      "ul",
      { class: "legend" },
      folds.map((fold, position) =>
        h(
          "li",
          { "data-fold": fold.name },
          h("span", { class: "swatch", style: { background: colour(position) } }),
          ` ${fold.name}`,
          fold.metrics.auroc?.auc !== null && fold.metrics.auroc?.auc !== undefined ? ` (AUROC ${formatNumber(fold.metrics.auroc.auc)})` : "",
          fold.metrics.roc_curve ? "" : h("span", { class: "reason small" }, " no curve: the held-out frames have one class only"),
        ),
      ),
    ),
  ]);
}

function calibrationPlot(folds: Fold[]): HTMLElement {
  const points = pooledCalibration(folds);
  const bins = Math.max(0, (folds.find((fold) => fold.metrics.calibration)?.metrics.calibration?.bin_edges.length ?? 1) - 1);
  const geometry = lineChartGeometry(
    [
      { key: "chance", points: [[0, 0], [1, 1]] },
      { key: "pooled", points: points.map((point) => [point.predicted, point.observed] as const) },
    ],
    SQUARE_FRAME,
    { xDomain: [0, 1], yDomain: [0, 1] },
  );
  const [diagonal, pooled] = geometry.lines;
  const plot = plotSvg(
    "calibration",
    SQUARE_FRAME,
    "Reliability diagram, folds pooled",
    axes(geometry.area, geometry.xTicks, geometry.yTicks, "mean predicted probability", "observed share positive", SQUARE_FRAME.height),
    svg("path", { class: "diagonal", d: diagonal!.path }),
    svg("path", { class: "calibration-line", d: pooled!.path }),
    pooled!.points.map((point, index) =>
      svg("circle", { class: "calibration-point", cx: point.x, cy: point.y, r: 3.5 }, svg("title", {}, `predicted ${formatNumber(points[index]!.predicted)}, observed ${formatNumber(points[index]!.observed)}, ${points[index]!.count} frames`)),
    ),
  );
  return figure("calibration-figure", plot, [
    h("strong", {}, "Calibration (reliability), folds pooled"),
    h("span", { class: "muted small" }, points.length === 0 ? " no probabilities to bin" : ` ${points.reduce((sum, point) => sum + point.count, 0)} frames in ${points.length} of ${bins} bins of equal width; the dashed line is perfect calibration`),
  ]);
}

function confusionTable(run: TrainingRun): HTMLElement {
  const matrix = summedConfusion(run.folds);
  const labels = run.folds[0]?.metrics.labels ?? run.labels;
  if (!matrix) return h("figure", { class: "plot confusion-figure" }, h("p", { class: "muted" }, "No confusion matrix."));
  return h(
    "figure",
    { class: "plot confusion-figure" },
    h(
      "table",
      { class: "data confusion" },
      h("thead", {}, h("tr", {}, h("th", {}, "true ↓ / predicted →"), labels.map((label) => h("th", {}, label)))),
      h(
        "tbody",
        {},
        matrix.map((row, i) =>
          h(
            "tr",
            { "data-true": labels[i] ?? i },
            h("th", { scope: "row" }, labels[i] ?? String(i)),
            row.map((count, j) => {
              const share = rowShare(matrix, i, j);
              return h(
                "td",
                { class: i === j ? "diagonal-cell" : "", "data-predicted": labels[j] ?? j, "data-count": count, style: { background: `rgb(110 168 254 / ${(0.08 + 0.6 * share).toFixed(2)})` }, title: `${formatNumber(share * 100, 0)} % of the true ${labels[i] ?? ""} frames` },
                count,
              );
            }),
          ),
        ),
      ),
    ),
    h("figcaption", {}, h("strong", {}, "Confusion matrix, folds summed"), h("span", { class: "muted small" }, " shaded by the share of each true class")),
  );
}

function perPatientPlot(run: TrainingRun): HTMLElement {
  const pooled = run.summary.per_patient_accuracy ?? {
    // Until the run is done (the summary is written with the model), from the folds so far.
    patients: run.folds.flatMap((fold) => fold.metrics.per_patient_accuracy?.patients ?? []),
    accuracy: run.folds.flatMap((fold) => fold.metrics.per_patient_accuracy?.accuracy ?? []),
  };
  const values = pooled.patients.map((patient, index) => ({ key: patient, value: pooled.accuracy[index] ?? Number.NaN }));
  const frame = { width: 340, margin: { top: 8, right: 16, bottom: 42, left: 16 } };
  const geometry = dotStripGeometry(values, frame, 4);
  const plot = plotSvg(
    "per-patient",
    { width: frame.width, height: geometry.height },
    "Per-patient accuracy",
    axes(geometry.area, geometry.ticks, [], "accuracy of the patient's held-out frames", "", geometry.height),
    geometry.dots.map((dot) => svg("circle", { class: "patient-dot", cx: dot.cx, cy: dot.cy, r: 4, "data-patient": dot.key }, svg("title", {}, `${dot.key}: ${formatNumber(dot.value)}`))),
  );
  const accuracies = values.map((item) => item.value).filter(Number.isFinite);
  const mean = accuracies.length ? accuracies.reduce((sum, value) => sum + value, 0) / accuracies.length : null;
  return figure("per-patient-figure", plot, [
    h("strong", {}, "Per-patient accuracy"),
    h("span", { class: "muted small per-patient-summary", "data-patients": accuracies.length }, ` ${accuracies.length} held-out patients, mean ${formatNumber(mean)}, lowest ${formatNumber(accuracies.length ? Math.min(...accuracies) : null)}`),
  ]);
}

function confidencePlot(folds: Fold[]): HTMLElement {
  const histogram = summedHistogram(folds);
  const frame: PlotFrame = { width: 340, height: 220, margin: { top: 12, right: 12, bottom: 42, left: 44 } };
  const layers = histogram
    ? [
        { key: "correct", counts: histogram.correct },
        { key: "wrong", counts: histogram.wrong },
      ]
    : [];
  const geometry = stackedBarsGeometry(histogram?.bin_edges ?? [0, 1], layers, frame);
  const plot = plotSvg(
    "confidence",
    frame,
    "Confidence histogram",
    axes(geometry.area, geometry.xTicks, geometry.yTicks, "the model's top probability", "frames", frame.height),
    geometry.bars.map((bar) => svg("rect", { class: `hist-bar hist-bar-${bar.key}`, x: bar.x, y: bar.y, width: bar.width, height: bar.height, "data-layer": bar.key, "data-bin": bar.bin, "data-count": bar.count }, svg("title", {}, `${bar.count} ${bar.key}`))),
  );
  return figure("confidence-figure", plot, [
    h("strong", {}, "Confidence, folds summed"),
    legend([
      ["correct", "var(--ok)"],
      ["wrong", "var(--bad)"],
    ]),
  ]);
}

// --- The model ---------------------------------------------------------------------------------------------------

/** The run's candidate model version and its promotion (with an optional re-score, whose job is
 * followed here until it finishes). */
class ModelSection {
  private disposed = false;
  private timer = 0;
  private readonly rescoreBox = h("p", { class: "rescore-job", hidden: true });

  constructor(
    private readonly root: HTMLElement,
    private readonly run: TrainingRun,
  ) {
    void this.start();
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.timer);
  }

  private async start(): Promise<void> {
    const run = this.run;
    if (run.model_version === null) {
      const text =
        run.job.status === "succeeded" || !isFinished(run.job)
          ? "The final model is registered as a candidate model version when the run succeeds."
          : "No model: the run did not finish.";
      mount(this.root, h("p", { class: "muted no-model" }, text));
      return;
    }
    mount(this.root, h("p", { class: "muted" }, "Loading the model version…"));
    let version: ModelVersion;
    try {
      version = await trainingApi.modelVersion(run.model_version);
    } catch (error) {
      if (!this.disposed) mount(this.root, h("p", { class: "error" }, `The model version could not be loaded: ${error instanceof Error ? error.message : String(error)}`));
      return;
    }
    if (!this.disposed) this.render(version);
  }

  private render(version: ModelVersion): void {
    const rescore = h("input", { type: "checkbox", class: "rescore-all", checked: true });
    const promote = h("button", { type: "button", class: "primary promote" }, "Promote to active");
    const notice = h("span", { class: "promote-notice small", role: "status" });
    promote.addEventListener("click", () => void this.promote(version, promote, rescore, notice));
    mount(
      this.root,
      h(
        "p",
        { class: "model-version", "data-version": version.id, "data-status": version.status },
        `Model version #${version.id} · ${version.name} · `,
        h("span", { class: `badge version-status status-${version.status}` }, version.status),
      ),
      version.status === "candidate"
        ? h(
            "div",
            { class: "row promote-row" },
            h("label", { class: "check" }, rescore, " re-score all of the project's frames with it"),
            promote,
            notice,
          )
        : null,
      this.rescoreBox,
    );
  }

  private async promote(version: ModelVersion, button: HTMLButtonElement, rescore: HTMLInputElement, notice: HTMLElement): Promise<void> {
    button.disabled = true;
    try {
      const activated = await trainingApi.activate(version.id, rescore.checked);
      if (this.disposed) return;
      this.render(activated);
      if (activated.rescore_job) this.showRescore(activated.rescore_job);
    } catch (error) {
      notice.className = "promote-notice small error";
      notice.textContent = error instanceof Error ? error.message : String(error);
      button.disabled = false;
    }
  }

  private showRescore(job: Job): void {
    this.rescoreBox.hidden = false;
    this.rescoreBox.dataset.job = String(job.id);
    this.rescoreBox.dataset.status = job.status;
    mount(this.rescoreBox, `Re-score job #${job.id}: `, jobBadge(job.status), job.progress_total ? ` ${job.progress_done} / ${job.progress_total} frames` : "", job.error ? h("span", { class: "error" }, ` ${job.error}`) : null);
    if (isFinished(job)) return;
    this.timer = window.setTimeout(async () => {
      try {
        const next = await trainingApi.job(job.id);
        if (!this.disposed) this.showRescore(next);
      } catch {
        if (!this.disposed) this.showRescore(job);
      }
    }, POLL_MS);
  }
}
