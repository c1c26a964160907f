// A project's model training page (/training/{project}), for its coordinators and admins: the
// runs so far and the "New training run" form. Every check is the server's: a refusal (400) shows
// each message beside the field it names and the whole list below the form, nothing navigates away
// and nothing is stored; an accepted run (202) opens its page.

import { ApiError, api, type LabelTask, type Project } from "./api";
import { h, mount, type Child } from "./dom";
import { pageState } from "./panels";
import { navigate } from "./router";
import { MISSING, errorMessages } from "./studyformat";
import { trainingApi, type ExportSnapshot, type TrainingRun } from "./trainingapi";
import {
  ARCHITECTURES,
  EVALUATION_SCHEMES,
  EXTERNAL_FIELDS,
  IMBALANCE,
  LABEL_SOURCES,
  OPTIMIZERS,
  SYNTHETIC_KINDS,
  TRAINING_ROLES,
  errorSlots,
  formatMeanSd,
  progressText,
  readNumber,
  trainingRequest,
  type TrainingFormValues,
} from "./trainingdata";

/** Loads the project and checks the caller may train (a reader gets the not-allowed state). */
export async function managedProject(projectId: number, root: HTMLElement): Promise<Project | null> {
  let project: Project;
  try {
    project = await api.project(projectId);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      mount(root, pageState("not-found", "Not found", "This project does not exist, or you are not a member of it."));
      return null;
    }
    throw error;
  }
  if (!TRAINING_ROLES.has(project.role ?? "")) {
    mount(root, pageState("not-allowed", "Not allowed", "Only the project's coordinators and admins train and promote models."));
    return null;
  }
  return project;
}

export async function trainingView(root: HTMLElement, projectId: number): Promise<void> {
  mount(root, h("p", { class: "muted" }, "Loading…"));
  const project = await managedProject(projectId, root);
  if (!project) return;
  const [tasks, weights, runs, exports] = await Promise.all([
    api.tasks(projectId),
    trainingApi.pretrainedWeights(),
    trainingApi.list(projectId),
    // Offered, not needed: without them the form still trains from the project's labels.
    trainingApi.exports(projectId).catch(() => [] as ExportSnapshot[]),
  ]);
  document.title = `Model training · ${project.name} · CLEAR`;
  mount(
    root,
    h("p", {}, h("a", { href: `/projects/${project.id}`, "data-route": "" }, `← ${project.name}`)),
    h("h1", {}, "Model training"),
    h("h2", {}, "Training runs"),
    runsTable(project.id, runs, tasks),
    h("h2", {}, "New training run"),
    new TrainingForm(project, tasks, weights, exports).element,
  );
}

function runsTable(project: number, runs: TrainingRun[], tasks: LabelTask[]): HTMLElement {
  if (runs.length === 0) return h("p", { class: "muted runs-empty" }, "No training run yet.");
  const taskName = (id: number) => tasks.find((task) => task.id === id)?.name;
  return h(
    "table",
    { class: "data runs-table" },
    h("thead", {}, h("tr", {}, ["Run", "Task", "Status", "Progress", "AUROC (mean ± SD)", "Accuracy (mean ± SD)", "Model version", "Created"].map((title) => h("th", {}, title)))),
    h(
      "tbody",
      {},
      runs.map((run) =>
        h(
          "tr",
          { "data-run": run.id },
          h("td", {}, h("a", { class: "run-link", href: `/training/${project}/${run.id}`, "data-route": "" }, run.name)),
          h("td", {}, taskName(run.task) ?? run.task_key),
          h("td", {}, jobBadge(run.job.status)),
          h("td", { class: "small" }, progressText(run.job)),
          h("td", {}, formatMeanSd(run.summary.auroc)),
          h("td", {}, formatMeanSd(run.summary.accuracy)),
          h("td", {}, run.model_version === null ? MISSING : `#${run.model_version}`),
          h("td", { class: "small" }, new Date(run.created_at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })),
        ),
      ),
    ),
  );
}

export function jobBadge(status: string): HTMLElement {
  return h("span", { class: `badge job-status status-${status}`, "data-status": status }, status);
}

// --- The form ------------------------------------------------------------------------------------------

/** Each field's error box, by the API's error key ("config.architecture", "evaluation.k", …). */
class ErrorBoxes {
  private readonly boxes = new Map<string, HTMLElement>();

  box(key: string): HTMLElement {
    const box = h("span", { class: "field-error error small", "data-error-for": key, role: "alert", hidden: true });
    this.boxes.set(key, box);
    return box;
  }

  keys(): string[] {
    return [...this.boxes.keys()];
  }

  show(placed: Map<string, string[]>): void {
    for (const [key, box] of this.boxes) {
      const messages = placed.get(key) ?? [];
      box.textContent = messages.join(" ");
      box.hidden = messages.length === 0;
    }
  }
}

function numberInput(name: string, value: string, attrs: Record<string, unknown> = {}): HTMLInputElement {
  return h("input", { type: "number", name, value, step: "any", ...attrs });
}

function select(name: string, options: readonly { value: string; label: string }[], chosen?: string): HTMLSelectElement {
  return h(
    "select",
    { name },
    options.map((option) => h("option", { value: option.value, selected: option.value === chosen }, option.label)),
  );
}

function checkbox(name: string, checked: boolean): HTMLInputElement {
  return h("input", { type: "checkbox", name, checked });
}

const valueOf = (value: string) => ({ value, label: value });

class TrainingForm {
  readonly element: HTMLFormElement;
  private readonly errors = new ErrorBoxes();
  private readonly errorList = h("div", { class: "form-errors error training-errors", role: "alert", hidden: true });
  private readonly submit = h("button", { type: "submit", class: "primary start-training" }, "Start training");

  private readonly task: HTMLSelectElement;
  private readonly name = h("input", { name: "name", maxlength: "200", required: true, placeholder: "e.g. diagnosis, efficientnet_b0, 5-fold" });
  private readonly labelSource = select("label_source", LABEL_SOURCES, "adjudicated");
  private readonly positive = h("select", { name: "positive" });
  private readonly exportSelect = h("select", { name: "export" });
  private readonly exportRow: HTMLElement;

  private readonly architecture = h("input", { name: "architecture", list: "training-architectures", value: "efficientnet_b0", autocomplete: "off" });
  private readonly inputSize = numberInput("input_size", "224", { min: "16", max: "1024", step: "1" });
  private readonly inChans = select("in_chans", [
    { value: "", label: "auto (as the architecture has it)" },
    { value: "1", label: "1 (grey)" },
    { value: "3", label: "3 (colour)" },
  ]);
  private readonly pretrained: HTMLSelectElement;
  private readonly epochs = numberInput("epochs", "10", { min: "1", max: "1000", step: "1" });
  private readonly learningRate = numberInput("learning_rate", "0.001", { min: "0" });
  private readonly batchSize = numberInput("batch_size", "32", { min: "1", max: "4096", step: "1" });
  private readonly optimizer = select("optimizer", OPTIMIZERS.map(valueOf), "adamw");
  private readonly weightDecay = numberInput("weight_decay", "0.0001", { min: "0" });
  private readonly imbalance = select("imbalance", IMBALANCE, "none");
  private readonly focalGamma = numberInput("focal_gamma", "2", { min: "0" });
  private readonly labelSmoothing = numberInput("label_smoothing", "0", { min: "0", max: "0.99" });
  private readonly dropout = numberInput("dropout", "0", { min: "0", max: "0.99" });
  private readonly patience = numberInput("early_stopping_patience", "0", { min: "0", step: "1" });
  private readonly seed = numberInput("seed", "0", { min: "0", step: "1" });
  private readonly focalRow: HTMLElement;

  private readonly rotation = numberInput("rotation_degrees", "10", { min: "0", max: "180" });
  private readonly horizontalFlip = checkbox("horizontal_flip", true);
  private readonly verticalFlip = checkbox("vertical_flip", true);
  private readonly translate = numberInput("translate", "0", { min: "0", max: "0.5" });
  private readonly zoom = numberInput("zoom", "0", { min: "0", max: "0.9" });
  private readonly shear = numberInput("shear_degrees", "0", { min: "0", max: "45" });
  private readonly brightness = numberInput("brightness", "0", { min: "0", max: "0.9" });
  private readonly contrast = numberInput("contrast", "0", { min: "0", max: "0.9" });
  private readonly blurProbability = numberInput("blur_probability", "0", { min: "0", max: "1" });
  private readonly blurRadius = numberInput("blur_max_radius", "2", { min: "0" });

  private readonly scheme = select("scheme", EVALUATION_SCHEMES, "kfold");
  private readonly k = numberInput("k", "5", { min: "2", step: "1" });
  private readonly stratify = checkbox("stratify", true);
  private readonly splitSeed = numberInput("split_seed", "0", { min: "0", step: "1" });
  private readonly train = numberInput("train", "0.7", { min: "0", max: "1" });
  private readonly val = numberInput("val", "0.15", { min: "0", max: "1" });
  private readonly test = numberInput("test", "0.15", { min: "0", max: "1" });
  private readonly externalField = select("field", EXTERNAL_FIELDS.map(valueOf), "site");
  private readonly externalValues = h("input", { name: "values", placeholder: "e.g. ileum, duodenum" });
  private readonly validationFraction = numberInput("validation_fraction", "0.2", { min: "0.05", max: "0.5" });
  private readonly schemeRows: Record<string, HTMLElement[]> = {};

  private readonly synthetic = checkbox("synthetic", false);
  private readonly good = h("select", { name: "good" });
  private readonly bad = h("select", { name: "bad" });
  private readonly kinds = SYNTHETIC_KINDS.map((kind) => h("input", { type: "checkbox", name: "kinds", value: kind.value, checked: kind.value !== "blur_brightness" }));
  private readonly perGood = numberInput("per_good_frame", "1", { min: "1", max: "3", step: "1" });
  private readonly syntheticRows = h("div", { class: "synthetic-settings" });

  constructor(
    private readonly project: Project,
    private readonly tasks: LabelTask[],
    weights: string[],
    private readonly exports: ExportSnapshot[],
  ) {
    this.task = h("select", { name: "task" }, tasks.map((task) => h("option", { value: task.id }, task.name)));
    this.pretrained = select("pretrained_file", [{ value: "", label: "none (random initialisation)" }, ...weights.map(valueOf)]);
    this.focalRow = this.field("Focal loss γ", this.focalGamma, "config.focal_gamma");
    this.exportRow = this.field(
      "Export snapshot",
      this.exportSelect,
      "export",
      "A ready export of this task (a ZIP format with one label per frame): its frames and labels, checked against its manifest; its hash becomes the run's snapshot id.",
    );
    this.element = this.render();
    this.task.addEventListener("change", () => this.taskChanged());
    this.imbalance.addEventListener("change", () => this.imbalanceChanged());
    this.scheme.addEventListener("change", () => this.schemeChanged());
    this.labelSource.addEventListener("change", () => (this.exportRow.hidden = this.labelSource.value !== "export"));
    this.exportRow.hidden = true;
    this.synthetic.addEventListener("change", () => (this.syntheticRows.hidden = !this.synthetic.checked));
    this.taskChanged();
    this.imbalanceChanged();
    this.schemeChanged();
    this.syntheticRows.hidden = true;
  }

  private field(label: string, control: HTMLElement, errorKey: string | null, hint?: string): HTMLElement {
    return h(
      "label",
      { class: "field" },
      label,
      control,
      hint ? h("span", { class: "muted small" }, hint) : null,
      errorKey ? this.errors.box(errorKey) : null,
    );
  }

  private check(input: HTMLInputElement, text: string): HTMLElement {
    return h("label", { class: "check" }, input, ` ${text}`);
  }

  private render(): HTMLFormElement {
    const kfold = [this.field("Folds (k)", this.k, "evaluation.k"), this.check(this.stratify, "stratify the folds by class")];
    const seedRow = this.field("Split seed", this.splitSeed, "evaluation.seed");
    const ratio = [this.field("Train share", this.train, "evaluation.train"), this.field("Validation share", this.val, "evaluation.val"), this.field("Test share", this.test, "evaluation.test")];
    const external = [
      this.field("External by", this.externalField, "evaluation.field"),
      this.field("Values that make the external set (comma-separated)", this.externalValues, "evaluation.values"),
    ];
    this.schemeRows.kfold = [...kfold, seedRow];
    this.schemeRows.ratio = [...ratio, seedRow];
    this.schemeRows.external = external;
    const grid = (...children: Child[]) => h("div", { class: "field-grid" }, ...children);
    return h(
      "form",
      {
        class: "study-form training-form",
        novalidate: true,
        onsubmit: (event: Event) => {
          event.preventDefault();
          void this.save();
        },
      },
      h(
        "fieldset",
        {},
        h("legend", {}, "Run"),
        grid(
          this.field("Label task", this.task, "task"),
          this.field("Name", this.name, "name"),
          this.field("Label source", this.labelSource, "label_source"),
          this.exportRow,
          this.field("Positive class", this.positive, "positive", "Binary metrics (sensitivity, specificity, ROC) are about this class; without one, a task of more than two classes is evaluated as multi-class."),
        ),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Model"),
        grid(
          this.field("Architecture", this.architecture, "config.architecture", "A timm name or one of CLEAR's own (cnn_lstm)."),
          h("datalist", { id: "training-architectures" }, ARCHITECTURES.map((name) => h("option", { value: name }))),
          this.field("Input size (pixels)", this.inputSize, null),
          this.field("Input channels", this.inChans, null),
          this.field("Pretrained weights", this.pretrained, "config.pretrained_file", "Local files only (CLEAR_PRETRAINED_DIR); nothing is downloaded."),
        ),
        this.errors.box("config"),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Optimisation"),
        grid(
          this.field("Epochs", this.epochs, null),
          this.field("Learning rate", this.learningRate, null),
          this.field("Batch size", this.batchSize, null),
          this.field("Optimizer", this.optimizer, null),
          this.field("Weight decay", this.weightDecay, null),
          this.field("Class imbalance", this.imbalance, null),
          this.focalRow,
          this.field("Label smoothing", this.labelSmoothing, null),
          this.field("Dropout", this.dropout, null),
          this.field("Early stopping patience (epochs; 0: off)", this.patience, null, "Stops when the validation loss has not improved for this many epochs."),
          this.field("Seed", this.seed, null),
        ),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Augmentation (training frames only)"),
        h("div", { class: "row" }, this.check(this.horizontalFlip, "horizontal flips"), this.check(this.verticalFlip, "vertical flips")),
        grid(
          this.field("Rotation (± degrees)", this.rotation, null),
          this.field("Translation (± share of the frame)", this.translate, null),
          this.field("Zoom (± share)", this.zoom, null),
          this.field("Shear (± degrees)", this.shear, null),
          this.field("Brightness (± share)", this.brightness, null),
          this.field("Contrast (± share)", this.contrast, null),
          this.field("Blur probability", this.blurProbability, null),
          this.field("Blur radius up to (pixels)", this.blurRadius, null),
        ),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Evaluation on held-out patients"),
        h("p", { class: "muted small" }, "Patients are never split: all frames of a patient are on one side of every split."),
        grid(
          this.field("Scheme", this.scheme, "evaluation.scheme"),
          ...kfold,
          seedRow,
          ...ratio,
          ...external,
          this.field("Validation share of the training patients", this.validationFraction, "evaluation.validation_fraction", "Held back from training for early stopping (only used when it is on)."),
        ),
        this.errors.box("evaluation"),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Synthetic bad-quality frames"),
        h(
          "p",
          { class: "muted small" },
          "For quality tasks (as in the ENT study): blurred and/or brightness-changed copies of good training frames are added as bad ones. They are made on the fly, never stored, exported or tested on.",
        ),
        this.check(this.synthetic, "add synthetic bad-quality frames"),
        this.syntheticRows,
        this.errors.box("synthetic"),
      ),
      this.errorList,
      h("div", { class: "row" }, this.submit),
    );
  }

  private choices(): string[] {
    const task = this.tasks.find((candidate) => String(candidate.id) === this.task.value);
    return task ? task.choices.filter((choice) => choice.is_active).map((choice) => choice.value) : [];
  }

  /** The positive class and the good/bad choices come from the task's choices. */
  private taskChanged(): void {
    const choices = this.choices();
    const key = this.tasks.find((task) => String(task.id) === this.task.value)?.key;
    const exports = this.exports.filter((snapshot) => snapshot.task === key);
    mount(
      this.exportSelect,
      exports.length === 0 ? h("option", { value: "" }, "no ready export of this task") : null,
      exports.map((snapshot) =>
        h(
          "option",
          { value: snapshot.id },
          `#${snapshot.id} · ${snapshot.format} · ${snapshot.label_source} labels · split ${String(snapshot.split.scheme ?? "none")} · ${new Date(snapshot.created_at).toLocaleDateString()}`,
        ),
      ),
    );
    mount(
      this.positive,
      h("option", { value: "" }, choices.length === 2 ? `default (${choices[1]})` : "none (multi-class)"),
      choices.map((choice) => h("option", { value: choice }, choice)),
    );
    // A quality task's usual names, else its first and last choices.
    const good = choices.find((choice) => /good|diagnostic/i.test(choice) && !/non|not/i.test(choice)) ?? choices[0];
    const bad = choices.find((choice) => choice !== good && /bad|poor|non|not/i.test(choice)) ?? choices.at(-1);
    mount(this.good, choices.map((choice) => h("option", { value: choice, selected: choice === good }, choice)));
    mount(this.bad, choices.map((choice) => h("option", { value: choice, selected: choice === bad }, choice)));
    mount(
      this.syntheticRows,
      h(
        "div",
        { class: "field-grid" },
        this.field("Good class", this.good, null),
        this.field("Bad class", this.bad, null),
        this.field("Synthetic frames per good frame (1–3)", this.perGood, "synthetic.per_good_frame"),
      ),
      h(
        "div",
        { class: "row" },
        SYNTHETIC_KINDS.map((kind, index) => this.check(this.kinds[index]!, kind.label)),
        this.errors.box("synthetic.kinds"),
      ),
    );
  }

  private imbalanceChanged(): void {
    this.focalRow.hidden = this.imbalance.value !== "focal";
  }

  private schemeChanged(): void {
    const shown = new Set(this.schemeRows[this.scheme.value] ?? []);
    for (const row of Object.values(this.schemeRows).flat()) row.hidden = !shown.has(row);
  }

  private values(): TrainingFormValues {
    const number = (input: HTMLInputElement) => readNumber(input.value);
    return {
      project: this.project.id,
      task: Number(this.task.value),
      name: this.name.value,
      labelSource: this.labelSource.value,
      export: this.exportSelect.value ? Number(this.exportSelect.value) : null,
      positive: this.positive.value,
      config: {
        architecture: this.architecture.value.trim(),
        input_size: number(this.inputSize),
        in_chans: this.inChans.value ? Number(this.inChans.value) : null,
        epochs: number(this.epochs),
        learning_rate: number(this.learningRate),
        batch_size: number(this.batchSize),
        optimizer: this.optimizer.value,
        weight_decay: number(this.weightDecay),
        imbalance: this.imbalance.value,
        focal_gamma: number(this.focalGamma),
        label_smoothing: number(this.labelSmoothing),
        dropout: number(this.dropout),
        early_stopping_patience: number(this.patience),
        pretrained_file: this.pretrained.value || null,
        seed: number(this.seed),
        augmentation: {
          rotation_degrees: number(this.rotation),
          horizontal_flip: this.horizontalFlip.checked,
          vertical_flip: this.verticalFlip.checked,
          translate: number(this.translate),
          zoom: number(this.zoom),
          shear_degrees: number(this.shear),
          brightness: number(this.brightness),
          contrast: number(this.contrast),
          blur_probability: number(this.blurProbability),
          blur_max_radius: number(this.blurRadius),
        },
      },
      evaluation: {
        scheme: this.scheme.value,
        k: number(this.k),
        seed: number(this.splitSeed),
        stratify: this.stratify.checked,
        train: number(this.train),
        val: number(this.val),
        test: number(this.test),
        field: this.externalField.value,
        values: this.externalValues.value,
        validation_fraction: number(this.validationFraction),
      },
      synthetic: this.synthetic.checked
        ? { good: this.good.value, bad: this.bad.value, kinds: this.kinds.filter((kind) => kind.checked).map((kind) => kind.value), per_good_frame: number(this.perGood) }
        : null,
    };
  }

  private showErrors(body: unknown): void {
    this.errors.show(errorSlots(body, this.errors.keys()));
    const messages = errorMessages(body);
    mount(
      this.errorList,
      h("strong", {}, "The server refused the run; nothing was stored:"),
      h(
        "ul",
        {},
        (messages.length > 0 ? messages : ["The run was refused."]).map((message) => h("li", {}, message)),
      ),
    );
    this.errorList.hidden = false;
    this.errorList.scrollIntoView({ block: "nearest" });
  }

  private async save(): Promise<void> {
    this.errors.show(new Map());
    this.errorList.hidden = true;
    this.submit.disabled = true;
    try {
      const run = await trainingApi.create(trainingRequest(this.values()));
      navigate(`/training/${this.project.id}/${run.id}`);
    } catch (error) {
      this.showErrors(error instanceof ApiError ? error.body : error instanceof Error ? error.message : String(error));
    } finally {
      this.submit.disabled = false;
    }
  }
}
