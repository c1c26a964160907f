// A study's results on its dashboard: one question at a time (positive class chosen here), computed
// by GET /api/studies/{id}/results/. Tables carry every number, with the server's reason wherever
// one is missing; the ROC curves and the forest plot are inline SVG views of the same numbers.

import { api, type LabelTask } from "./api";
import { h, mount, type Child } from "./dom";
import { colour, forestGeometry, rocGeometry, type ForestInput, type PlotFrame } from "./plots";
import { axes, svg } from "./svg";
import {
  MISSING,
  POSITIVE_RULE,
  defaultPositive,
  formatDuration,
  formatEstimate,
  formatNumber,
  formatP,
  formatProportion,
  formatRate,
  type ProportionLike,
} from "./studyformat";
import {
  studyApi,
  type BootstrapInterval,
  type Comparison,
  type ConditionResult,
  type MrmcResult,
  type ReaderAccuracy,
  type Study,
  type StudyResults,
  type SwitchCounts,
} from "./studyapi";

const DEFAULT_RESAMPLES = 2000;
const MEASURES = ["sensitivity", "specificity", "accuracy"] as const;
const MEASURE_NAMES: Record<string, string> = { sensitivity: "Sensitivity", specificity: "Specificity", accuracy: "Accuracy", auc: "AUC" };

/** The results part of the dashboard; `onResults` hears of every results answer (the dashboard takes
 * the readers from it). */
export function resultsSection(study: Study, studySeed: string, onResults: (results: StudyResults) => void): HTMLElement {
  const section = h("section", { class: "study-results", "data-state": "loading" }, h("p", { class: "muted" }, "Loading…"));
  new ResultsView(section, study, studySeed, onResults).start().catch((error: unknown) => {
    section.dataset.state = "error";
    mount(section, h("p", { class: "error" }, `The results could not be loaded: ${error instanceof Error ? error.message : String(error)}`));
  });
  return section;
}

class ResultsView {
  private readonly question: HTMLSelectElement = h("select", { class: "results-question", "aria-label": "Question" });
  private readonly positive: HTMLSelectElement = h("select", { class: "results-positive", "aria-label": "Positive class" });
  private readonly resamples = h("input", { type: "number", class: "results-resamples", min: "100", max: "10000", step: "100", value: String(DEFAULT_RESAMPLES) });
  // Text, not a number input: a seed may have more digits than a JavaScript number keeps.
  private readonly seed = h("input", { class: "results-seed", inputmode: "numeric", pattern: "[0-9]*", placeholder: "the study's seed" });
  private readonly status = h("p", { class: "results-status muted", "aria-live": "polite" });
  private readonly output = h("div", { class: "results-output" });
  private tasks: LabelTask[] = [];
  private ticket = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly study: Study,
    private readonly studySeed: string,
    private readonly onResults: (results: StudyResults) => void,
  ) {}

  async start(): Promise<void> {
    if (this.study.questions.length === 0) {
      mount(this.root, h("p", { class: "muted" }, "The study asks no question."));
      return;
    }
    // The label tasks give every question's choices before the first computation, so it already
    // uses the positive class the page defaults to.
    this.tasks = await api.allTasks(this.study.project);
    mount(
      this.question,
      this.study.questions.map((question) => h("option", { value: question.task_key }, question.task_name)),
    );
    this.question.addEventListener("change", () => {
      this.fillPositive();
      void this.compute();
    });
    this.positive.addEventListener("change", () => void this.compute());
    this.fillPositive();
    const compute = h("button", { class: "compute-results", onclick: () => void this.compute() }, "Compute");
    mount(
      this.root,
      h(
        "div",
        { class: "results-controls row" },
        h("label", { class: "field" }, "Question", this.question),
        h("label", { class: "field" }, "Positive class", this.positive),
        h("label", { class: "field" }, "Bootstrap resamples", this.resamples),
        h("label", { class: "field" }, "Bootstrap seed", this.seed),
        compute,
      ),
      h("p", { class: "muted small positive-rule" }, POSITIVE_RULE),
      h("p", {}, h("a", { class: "readings-csv", href: studyApi.csvPath(this.study.id), download: "" }, "Download every reading (CSV)")),
      this.status,
      this.output,
    );
    await this.compute();
  }

  private choices(key: string): string[] {
    const task = this.tasks.find((candidate) => candidate.key === key);
    return task ? task.choices.filter((choice) => choice.is_active).map((choice) => choice.value) : [];
  }

  private fillPositive(): void {
    const choices = this.choices(this.question.value);
    const chosen = defaultPositive(choices);
    mount(
      this.positive,
      // Without a positive class a two-choice question still takes its last choice on the server, so
      // "none" is offered only where it means multi-class.
      choices.length > 2 ? h("option", { value: "", selected: chosen === null }, "none (multi-class)") : null,
      choices.map((choice) => h("option", { value: choice, selected: choice === chosen }, choice)),
    );
  }

  private async compute(): Promise<void> {
    const ticket = ++this.ticket;
    this.root.dataset.state = "loading";
    this.status.className = "results-status muted";
    this.status.textContent = "Computing the results…";
    const seed = this.seed.value.trim();
    let results: StudyResults;
    try {
      if (seed && !/^\d+$/.test(seed)) throw new Error("The bootstrap seed is a whole number.");
      results = await studyApi.results(this.study.id, {
        question: this.question.value,
        positive: this.positive.value || null,
        resamples: Number(this.resamples.value) || DEFAULT_RESAMPLES,
        seed: seed || null,
      });
    } catch (error) {
      if (ticket !== this.ticket) return;
      this.root.dataset.state = "error";
      this.status.className = "results-status error";
      this.status.textContent = `The results could not be computed: ${error instanceof Error ? error.message : String(error)}`;
      return;
    }
    if (ticket !== this.ticket) return;
    this.root.dataset.state = "ready";
    this.status.textContent = results.study.locked
      ? "Final results: the study is locked."
      : "Interim results: the study is open and readings may still come in.";
    mount(this.output, renderResults(results, seed || this.studySeed));
    this.onResults(results);
  }
}

// --- The results -------------------------------------------------------------------------------------

/** `seed`: the bootstrap seed as written (the results' own number may be rounded by JSON.parse). */
export function renderResults(results: StudyResults, seed: string): Child[] {
  const binary = results.question.analysis === "binary";
  const reasons = [...new Set([...results.reasons, results.question.reason].filter(Boolean))];
  return [
    casesSummary(results, seed),
    reasons.length > 0 ? h("ul", { class: "reasons" }, reasons.map((reason) => h("li", {}, reason))) : null,
    h("h3", {}, binary ? "Sensitivity, specificity, accuracy and AUC per condition" : "Accuracy per condition"),
    h(
      "p",
      { class: "muted small" },
      "Estimates with 95 % intervals: Wilson per reader and for all readings pooled; the pooled patient bootstrap resamples patients.",
      binary ? ` AUC with DeLong intervals (not clipped to [0, 1], as pROC reports them), from the rating: ${results.question.rating_scale}.` : "",
    ),
    results.conditions.map((condition) => conditionTable(condition, binary)),
    binary ? h("h3", {}, "ROC curves") : null,
    binary ? h("div", { class: "roc-plots" }, results.conditions.map((condition) => rocPlot(condition))) : null,
    forestSection(results, binary),
    h("h3", {}, "Agreement between readers"),
    agreementTable(results.conditions),
    pairwiseTables(results.conditions),
    h("h3", {}, "Agreement with and without AI"),
    kappaDifferenceTable(results.comparisons),
    h("h3", {}, "Readers against the AI"),
    aiAgreementTable(results.conditions),
    h("h3", {}, "Automation bias (sequential arms)"),
    automationBiasTables(results),
    h("h3", {}, "Time per case"),
    timeTable(results.conditions),
    h("h3", {}, "MRMC (Obuchowski–Rockette, readers and cases random)"),
    mrmcTable(results.comparisons),
    h("h3", {}, "Methods"),
    methodsBox(results.methods),
  ];
}

function casesSummary(results: StudyResults, seed: string): HTMLElement {
  const cases = results.cases;
  const question = results.question;
  const parts = [
    `${cases.analysed} cases analysed from ${cases.patients} patients`,
    cases.positive !== null ? `${cases.positive} positive (${question.positive}), ${cases.negative} negative` : null,
    `${cases.training_excluded} training cases excluded`,
    cases.without_reference ? `${cases.without_reference} without a reference for this question` : null,
    question.analysis === "binary" ? `binary analysis, positive class '${question.positive}'` : "multi-class analysis",
    `${results.parameters.resamples} bootstrap resamples, seed ${seed}`,
  ];
  return h(
    "p",
    { class: "cases-summary", "data-analysed": cases.analysed, "data-positive": question.positive ?? "" },
    parts.filter(Boolean).join(" · "),
  );
}

/** A table cell: the text, or MISSING with the reason next to it (never a blank cell). */
function valueCell(text: string, reason = "", attrs: Record<string, unknown> = {}, extra: Child = null): HTMLElement {
  if (text === MISSING) {
    return h("td", { ...attrs, class: "missing" }, MISSING, reason ? h("span", { class: "reason small" }, ` ${reason}`) : null);
  }
  return h("td", attrs, text, extra);
}

function proportionCell(measure: string, proportion: ProportionLike | null | undefined): HTMLElement {
  const formatted = formatProportion(proportion);
  return valueCell(formatted.text, formatted.reason, { "data-measure": measure, "data-value": proportion?.value ?? "" }, h("span", { class: "muted small counts" }, ` ${formatted.counts}`));
}

function bootstrapCell(measure: string, interval: BootstrapInterval | undefined, fallbackReason: string): HTMLElement {
  if (!interval) return valueCell(MISSING, fallbackReason || "Not computed.", { "data-measure": measure });
  const text = formatEstimate(interval.estimate, interval.ci_low, interval.ci_high);
  // A reason beside a number tells of resamples left out; beside a dash, why there is none.
  const note = interval.reason ? h("span", { class: "reason small" }, ` ${interval.reason}`) : null;
  return valueCell(text, interval.reason, { "data-measure": measure }, note);
}

function aucCell(reader: ReaderAccuracy): HTMLElement {
  const auc = reader.auc;
  const text = auc ? formatEstimate(auc.auc, auc.ci_low, auc.ci_high) : MISSING;
  return valueCell(text, reader.auc_reason || "Not computed.", { "data-measure": "auc", "data-value": auc?.auc ?? "" });
}

function conditionTitle(condition: ConditionResult): HTMLElement {
  return h(
    "h4",
    {},
    condition.key,
    " ",
    h("span", { class: `badge ${condition.ai_shown ? "with-ai" : "without-ai"}` }, condition.ai_shown ? "with AI" : "without AI"),
    h("span", { class: "muted small" }, ` ${condition.n_readers} readers · ${condition.n_cases} cases · ${condition.n_readings} readings`),
  );
}

function conditionTable(condition: ConditionResult, binary: boolean): HTMLElement {
  const head = binary
    ? ["Reader", "Cases", "TP", "FP", "TN", "FN", "Sensitivity", "Specificity", "Accuracy", "AUC"]
    : ["Reader", "Cases", "Accuracy"];
  const readerRow = (reader: ReaderAccuracy) =>
    h(
      "tr",
      { "data-reader": reader.reader },
      h("th", { scope: "row" }, reader.reader),
      h("td", {}, reader.n_cases),
      binary
        ? [
            h("td", { "data-measure": "tp" }, reader.true_positive ?? MISSING),
            h("td", { "data-measure": "fp" }, reader.false_positive ?? MISSING),
            h("td", { "data-measure": "tn" }, reader.true_negative ?? MISSING),
            h("td", { "data-measure": "fn" }, reader.false_negative ?? MISSING),
            proportionCell("sensitivity", reader.sensitivity),
            proportionCell("specificity", reader.specificity),
          ]
        : null,
      proportionCell("accuracy", reader.accuracy),
      binary ? aucCell(reader) : null,
    );
  const pooled = condition.pooled;
  const pooledRow = h(
    "tr",
    { class: "pooled", "data-reader": "pooled" },
    h("th", { scope: "row" }, "All readers (Wilson)"),
    h("td", {}, pooled.n_readings),
    binary
      ? [
          h("td", {}, pooled.true_positive ?? MISSING),
          h("td", {}, pooled.false_positive ?? MISSING),
          h("td", {}, pooled.true_negative ?? MISSING),
          h("td", {}, pooled.false_negative ?? MISSING),
          proportionCell("sensitivity", pooled.sensitivity),
          proportionCell("specificity", pooled.specificity),
        ]
      : null,
    proportionCell("accuracy", pooled.accuracy),
    binary ? valueCell(MISSING, "AUC is per reader; see MRMC for the readers' mean.") : null,
  );
  const bootstrap = pooled.bootstrap ?? {};
  const bootstrapRow = h(
    "tr",
    { class: "pooled bootstrap", "data-reader": "bootstrap" },
    h("th", { scope: "row" }, "All readers (patient bootstrap)"),
    h("td", {}, pooled.n_readings),
    binary ? [h("td", { colspan: "4" }), ...["sensitivity", "specificity"].map((measure) => bootstrapCell(measure, bootstrap[measure], pooled.bootstrap_reason))] : null,
    bootstrapCell("accuracy", bootstrap.accuracy, pooled.bootstrap_reason),
    binary ? h("td", {}) : null,
  );
  return h(
    "div",
    { class: "condition", "data-condition": condition.key },
    conditionTitle(condition),
    condition.readers.length === 0
      ? h("p", { class: "muted" }, "No readings in this condition yet.")
      : h(
          "table",
          { class: "data accuracy-table", "data-condition": condition.key },
          h("thead", {}, h("tr", {}, head.map((title) => h("th", {}, title)))),
          h("tbody", {}, condition.readers.map(readerRow), pooledRow, bootstrapRow),
        ),
  );
}

// --- Plots ---------------------------------------------------------------------------------------------

const ROC_FRAME: PlotFrame = { width: 300, height: 300, margin: { top: 12, right: 12, bottom: 42, left: 48 } };

function rocPlot(condition: ConditionResult): HTMLElement {
  const drawn = condition.readers.filter((reader) => reader.roc);
  const geometry = rocGeometry(
    drawn.map((reader) => ({ key: reader.reader, fpr: reader.roc!.fpr, tpr: reader.roc!.tpr })),
    ROC_FRAME,
  );
  const { area } = geometry;
  const readerIndex = new Map(condition.readers.map((reader, index) => [reader.reader, index]));
  const plot = svg(
    "svg",
    { class: "roc", "data-condition": condition.key, viewBox: `0 0 ${ROC_FRAME.width} ${ROC_FRAME.height}`, width: ROC_FRAME.width, height: ROC_FRAME.height, role: "img", "aria-label": `ROC curves, ${condition.key}` },
    ...axes(area, geometry.xTicks, geometry.yTicks, "1 − specificity", "sensitivity", ROC_FRAME.height),
    svg("path", { class: "diagonal", d: geometry.diagonal }),
    ...geometry.curves.map((curve) =>
      svg("path", { class: "roc-curve", d: curve.path, stroke: colour(readerIndex.get(curve.key) ?? 0), "data-reader": curve.key, "data-condition": condition.key }),
    ),
  );
  return h(
    "figure",
    { class: "plot roc-figure", "data-condition": condition.key },
    plot,
    h(
      "figcaption",
      {},
      h("strong", {}, condition.key),
      h(
        "ul",
        { class: "legend" },
        condition.readers.map((reader, index) =>
          h(
            "li",
            { "data-reader": reader.reader },
            h("span", { class: "swatch", style: { background: colour(index) } }),
            ` ${reader.reader}`,
            reader.auc?.auc !== null && reader.auc?.auc !== undefined ? ` (AUC ${formatNumber(reader.auc.auc)})` : "",
            reader.roc ? "" : h("span", { class: "reason small" }, ` no curve: ${reader.auc_reason || "not computed"}`),
          ),
        ),
        h("li", { class: "muted" }, h("span", { class: "swatch diagonal-swatch" }), " chance"),
      ),
    ),
  );
}

function forestRows(results: StudyResults, measure: string): ForestInput[] {
  const rows: ForestInput[] = [];
  for (const reader of results.readers) {
    for (const condition of results.conditions) {
      const row = condition.readers.find((candidate) => candidate.reader === reader.reader);
      if (!row) continue;
      if (measure === "auc") {
        rows.push({ label: reader.reader, group: condition.key, estimate: row.auc?.auc ?? null, low: row.auc?.ci_low ?? null, high: row.auc?.ci_high ?? null });
      } else {
        const proportion = row[measure as (typeof MEASURES)[number]];
        rows.push({ label: reader.reader, group: condition.key, estimate: proportion?.value ?? null, low: proportion?.ci_low ?? null, high: proportion?.ci_high ?? null });
      }
    }
  }
  return rows;
}

function forestSection(results: StudyResults, binary: boolean): HTMLElement {
  const measures = binary ? ["auc", ...MEASURES] : ["accuracy"];
  const select = h(
    "select",
    { class: "forest-measure", "aria-label": "Measure" },
    measures.map((measure) => h("option", { value: measure }, MEASURE_NAMES[measure])),
  );
  const box = h("div", { class: "forest-box" });
  const draw = () => mount(box, forestPlot(results, select.value));
  select.addEventListener("change", draw);
  draw();
  return h("div", { class: "forest-section" }, h("h3", {}, "Per reader and condition ", select), box);
}

function forestPlot(results: StudyResults, measure: string): Child[] {
  const rows = forestRows(results, measure);
  if (rows.length === 0) return [h("p", { class: "muted" }, "No readings yet.")];
  const width = 560;
  const geometry = forestGeometry(rows, { width, margin: { top: 8, right: 16, bottom: 36, left: 190 } });
  const { area } = geometry;
  const groupIndex = new Map(results.conditions.map((condition, index) => [condition.key, index]));
  const plot = svg(
    "svg",
    { class: "forest", "data-measure": measure, viewBox: `0 0 ${width} ${geometry.height}`, width, height: geometry.height, role: "img", "aria-label": `${MEASURE_NAMES[measure]} per reader and condition` },
    svg("rect", { class: "plot-area", x: area.left, y: area.top, width: area.right - area.left, height: area.bottom - area.top }),
    ...geometry.ticks.map((tick) =>
      svg(
        "g",
        { class: "tick" },
        svg("line", { class: "grid", x1: tick.position, x2: tick.position, y1: area.top, y2: area.bottom }),
        svg("text", { x: tick.position, y: area.bottom + 16, "text-anchor": "middle" }, tick.label),
      ),
    ),
    svg("text", { class: "axis-label", x: (area.left + area.right) / 2, y: geometry.height - 4, "text-anchor": "middle" }, `${MEASURE_NAMES[measure]} (95 % CI)`),
    ...geometry.rows.map((row) => {
      const stroke = colour(groupIndex.get(row.group) ?? 0);
      return svg(
        "g",
        { class: "forest-row", "data-reader": row.label, "data-condition": row.group },
        svg("text", { x: area.left - 8, y: row.y + 4, "text-anchor": "end" }, `${row.label} · ${row.group}`),
        row.x1 !== null && row.x2 !== null ? svg("line", { class: "ci", x1: row.x1, x2: row.x2, y1: row.y, y2: row.y, stroke }) : null,
        row.clippedLow && row.x1 !== null ? svg("path", { class: "clipped", d: `M${row.x1 + 5},${row.y - 4}L${row.x1},${row.y}L${row.x1 + 5},${row.y + 4}`, stroke }) : null,
        row.clippedHigh && row.x2 !== null ? svg("path", { class: "clipped", d: `M${row.x2 - 5},${row.y - 4}L${row.x2},${row.y}L${row.x2 - 5},${row.y + 4}`, stroke }) : null,
        row.x !== null ? svg("circle", { class: "estimate", cx: row.x, cy: row.y, r: 4, fill: stroke }) : svg("text", { class: "reason", x: area.left + 6, y: row.y + 4 }, "not computed"),
      );
    }),
  );
  return [
    plot,
    h(
      "ul",
      { class: "legend" },
      results.conditions.map((condition, index) => h("li", {}, h("span", { class: "swatch", style: { background: colour(index) } }), ` ${condition.key}`)),
      h("li", { class: "muted small" }, "An arrowhead marks an interval that reaches beyond the axis."),
    ),
  ];
}

// --- Agreement, AI, automation bias, time, MRMC ---------------------------------------------------------

function table(className: string, head: string[], rows: Child[]): HTMLElement {
  return h("table", { class: `data ${className}` }, h("thead", {}, h("tr", {}, head.map((title) => h("th", {}, title)))), h("tbody", {}, rows));
}

function agreementTable(conditions: ConditionResult[]): HTMLElement {
  return table(
    "agreement-table",
    ["Condition", "Fleiss' κ (95 % CI)", "p", "Krippendorff's α", "Mean pairwise Cohen's κ"],
    conditions.map((condition) => {
      const agreement = condition.agreement;
      const fleiss = agreement.fleiss;
      const reason = agreement.reason;
      return h(
        "tr",
        { "data-condition": condition.key },
        h("th", { scope: "row" }, condition.key),
        valueCell(fleiss ? formatEstimate(fleiss.kappa, fleiss.ci_low, fleiss.ci_high) : MISSING, fleiss?.reason || reason, { "data-measure": "fleiss" }),
        valueCell(fleiss ? formatP(fleiss.p_value) : MISSING, fleiss?.reason || reason),
        valueCell(formatNumber(agreement.krippendorff?.alpha), agreement.krippendorff?.reason || reason, { "data-measure": "krippendorff" }),
        valueCell(formatNumber(agreement.pairwise_cohen?.mean_kappa), agreement.pairwise_cohen?.reason || reason, { "data-measure": "cohen" }),
      );
    }),
  );
}

function pairwiseTables(conditions: ConditionResult[]): HTMLElement {
  return h(
    "details",
    { class: "pairwise" },
    h("summary", {}, "Pairwise Cohen's κ per condition"),
    conditions.map((condition) => {
      const pairwise = condition.agreement.pairwise_cohen;
      if (!pairwise || pairwise.raters.length === 0) {
        return h("p", { class: "muted" }, `${condition.key}: ${pairwise?.reason || condition.agreement.reason || "not computed"}`);
      }
      return h(
        "div",
        {},
        h("h4", {}, condition.key),
        table(
          "pairwise-table",
          ["", ...pairwise.raters],
          pairwise.raters.map((rater, row) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, rater),
              pairwise.raters.map((_, column) => h("td", {}, row === column ? "" : formatNumber(pairwise.kappa[row]?.[column]))),
            ),
          ),
        ),
      );
    }),
  );
}

function kappaDifferenceTable(comparisons: Comparison[]): HTMLElement {
  if (comparisons.length === 0) return h("p", { class: "muted" }, "No comparison: the study has no condition with AI and one without.");
  return table(
    "kappa-difference-table",
    ["With AI vs without", "Fleiss' κ difference (patient bootstrap 95 % CI)", "Note"],
    comparisons.map((comparison) => {
      const difference = comparison.fleiss_kappa_difference;
      return h(
        "tr",
        { "data-comparison": comparison.key },
        h("th", { scope: "row" }, comparison.key),
        valueCell(formatEstimate(difference.estimate, difference.ci_low, difference.ci_high), difference.reason, { "data-measure": "fleiss-difference" }),
        h("td", { class: "small muted" }, difference.estimate !== null ? difference.reason : ""),
      );
    }),
  );
}

function aiAgreementTable(conditions: ConditionResult[]): HTMLElement {
  const withAi = conditions.filter((condition) => condition.ai_agreement);
  if (withAi.length === 0) return h("p", { class: "muted" }, "No condition shows the AI.");
  return table(
    "ai-agreement-table",
    ["Condition", "Reader", "Cohen's κ with the AI (95 % CI)", "Cases"],
    withAi.flatMap((condition) => {
      const agreement = condition.ai_agreement!;
      if (agreement.readers.length === 0) {
        return [h("tr", { "data-condition": condition.key }, h("th", { scope: "row" }, condition.key), h("td", {}), valueCell(MISSING, agreement.reason), h("td", {}, agreement.n_cases_with_ai))];
      }
      return agreement.readers.map((kappa) =>
        h(
          "tr",
          { "data-condition": condition.key, "data-reader": kappa.rater_a },
          h("th", { scope: "row" }, condition.key),
          h("td", {}, kappa.rater_a),
          valueCell(formatEstimate(kappa.kappa, kappa.ci_low, kappa.ci_high), kappa.reason),
          h("td", {}, kappa.n_items),
        ),
      );
    }),
  );
}

function switchCells(counts: SwitchCounts): HTMLElement[] {
  return [
    h("td", {}, counts.n_cases),
    h("td", {}, counts.changed),
    h("td", { "data-measure": "correct-to-wrong" }, `${counts.correct_to_wrong} of ${counts.n_correct_before} (${formatRate(counts.correct_to_wrong_rate)})`),
    h("td", { "data-measure": "wrong-to-correct" }, `${counts.wrong_to_correct} of ${counts.n_wrong_before} (${formatRate(counts.wrong_to_correct_rate)})`),
    counts.n_with_ai_answer === 0
      ? valueCell(MISSING, "No case with a single AI answer.")
      : h("td", {}, `${counts.switched_to_ai} of ${counts.n_disagreeing_with_ai_before} (${formatRate(counts.switched_to_ai_rate)})`),
    counts.n_with_ai_answer === 0 ? valueCell(MISSING, "") : h("td", {}, counts.switched_away_from_ai),
  ];
}

function automationBiasTables(results: StudyResults): Child {
  if (results.automation_bias.length === 0) return h("p", { class: "muted" }, "No sequential arm: every answer was given once.");
  return results.automation_bias.map((arm) =>
    h(
      "div",
      { "data-arm": arm.arm },
      h("h4", {}, arm.arm),
      table(
        "automation-bias-table",
        ["Reader", "Cases", "Changed", "Correct → wrong", "Wrong → correct", "Switched to the AI (of those disagreeing)", "Switched away from the AI"],
        [
          ...arm.readers.map((reader) => h("tr", { "data-reader": reader.reader }, h("th", { scope: "row" }, reader.reader), switchCells(reader))),
          h("tr", { class: "pooled", "data-reader": "pooled" }, h("th", { scope: "row" }, "All readers"), switchCells(arm.pooled)),
        ],
      ),
    ),
  );
}

function timeTable(conditions: ConditionResult[]): HTMLElement {
  return table(
    "time-table",
    ["Condition", "Readings", "Median (IQR)", "Mean"],
    conditions.map((condition) => {
      const time = condition.time;
      const median = time.median_ms === null ? MISSING : `${formatDuration(time.median_ms)} (${formatDuration(time.q1_ms)}–${formatDuration(time.q3_ms)})`;
      return h(
        "tr",
        { "data-condition": condition.key },
        h("th", { scope: "row" }, condition.key),
        h("td", {}, time.n),
        valueCell(median, time.reason, { "data-measure": "median-time" }),
        valueCell(formatDuration(time.mean_ms), time.reason),
      );
    }),
  );
}

function mrmcTable(comparisons: Comparison[]): HTMLElement {
  if (comparisons.length === 0) return h("p", { class: "muted" }, "No comparison: the study has no condition with AI and one without.");
  const rows = comparisons.flatMap((comparison) =>
    Object.entries(comparison.mrmc).map(([measure, result]) => mrmcRow(comparison, measure, result)),
  );
  return table("mrmc-table", ["With AI vs without", "Measure", "Means (with / without)", "Difference (95 % CI)", "p", "F (df)"], rows);
}

function mrmcRow(comparison: Comparison, measure: string, result: MrmcResult): HTMLElement {
  const attrs = { "data-comparison": comparison.key, "data-measure": measure };
  const test = result.rrrc;
  if (!test) {
    return h("tr", attrs, h("th", { scope: "row" }, comparison.key), h("td", {}, MEASURE_NAMES[measure] ?? measure), valueCell(MISSING, result.reason ?? "Not computed.", { colspan: "4" }));
  }
  const means = result.modality_means ? result.modality_means.map((mean) => formatNumber(mean)).join(" / ") : MISSING;
  const statistic =
    test.statistic === null ? MISSING : `${test.statistic_name} = ${formatNumber(test.statistic)} (${formatNumber(test.df1, 0)}, ${formatNumber(test.df2, 1)})`;
  return h(
    "tr",
    attrs,
    h("th", { scope: "row" }, comparison.key),
    h("td", {}, MEASURE_NAMES[measure] ?? measure),
    h("td", {}, means),
    valueCell(formatEstimate(test.effect, test.ci_low, test.ci_high, 3), test.reason, { "data-measure": "effect" }),
    valueCell(formatP(test.p_value), test.reason),
    valueCell(statistic, test.reason),
  );
}

function methodsBox(text: string): HTMLElement {
  const paragraph = h("p", { class: "methods-text" }, text);
  const note = h("span", { class: "muted small copy-state", "aria-live": "polite" });
  const copy = h(
    "button",
    {
      class: "small copy-methods",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          note.textContent = "Copied.";
        } catch {
          // No clipboard permission (e.g. plain http): select the text for Ctrl+C instead.
          const range = document.createRange();
          range.selectNodeContents(paragraph);
          const selection = window.getSelection();
          selection?.removeAllRanges();
          selection?.addRange(range);
          note.textContent = "Selected: press Ctrl+C to copy.";
        }
      },
    },
    "Copy",
  );
  return h("div", { class: "methods-box" }, h("div", { class: "row" }, copy, note), paragraph);
}
