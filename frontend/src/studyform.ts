// The design form of a new reader study (/studies/new/{project}): settings, questions, arms, cases
// and readers. Submitting creates the draft and sets its parts through the API one after the other;
// a refusal is shown beside the form and nothing navigates away; the study's page follows success.

import { ApiError, api, type LabelTask, type Project } from "./api";
import { h, mount } from "./dom";
import { pageState } from "./panels";
import { navigate } from "./router";
import { errorMessages } from "./studyformat";
import {
  ASSISTANCES,
  CASE_UNITS,
  DESIGNS,
  STUDY_MANAGER_ROLES,
  studyApi,
  type Assistance,
  type CaseCandidate,
  type CaseInput,
  type CaseUnit,
  type Design,
  type Member,
  type StudyArm,
  type StudySettings,
} from "./studyapi";

/** The API takes at most this many cases per request (studies/apis.py MAX_CASES_PER_REQUEST). */
const CASES_PER_REQUEST = 5000;
/** Rows of the case table drawn at once; "select all" still takes every candidate. */
const CASE_ROWS_SHOWN = 500;

export async function studyNewView(root: HTMLElement, projectId: number): Promise<void> {
  mount(root, h("p", { class: "muted" }, "Loading…"));
  let project: Project;
  try {
    project = await api.project(projectId);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      mount(root, pageState("not-found", "Not found", "This project does not exist, or you are not a member of it."));
      return;
    }
    throw error;
  }
  if (!STUDY_MANAGER_ROLES.has(project.role ?? "")) {
    mount(root, pageState("not-allowed", "Not allowed", "Only the project's coordinators and admins design reader studies."));
    return;
  }
  const [tasks, members] = await Promise.all([api.tasks(projectId), studyApi.members(projectId)]);
  document.title = `New reader study · ${project.name} · CLEAR`;
  new StudyForm(root, project, tasks, members).render();
}

interface ReaderRow {
  member: Member;
  group: number;
}

class StudyForm {
  private readonly name = h("input", { name: "name", required: true, maxlength: "200", class: "study-name" });
  private readonly description = h("textarea", { name: "description", rows: "2", class: "study-description" });
  private readonly design = h(
    "select",
    { name: "design", class: "study-design" },
    DESIGNS.map((design) => h("option", { value: design.value }, design.label)),
  );
  private readonly caseUnit = h(
    "select",
    { name: "case_unit", class: "study-case-unit" },
    CASE_UNITS.map((unit) => h("option", { value: unit.value }, unit.label)),
  );
  private readonly washout = h("input", { name: "washout_days", type: "number", min: "0", max: "365", value: "0", class: "study-washout" });
  private readonly groups = h("input", { name: "reader_groups", type: "number", min: "2", max: "20", value: "2", class: "study-groups" });
  // Text, not a number input: a seed to reproduce may have up to 62 bits, more than a JavaScript
  // number holds exactly; it goes to the server as written.
  private readonly seed = h("input", { name: "seed", inputmode: "numeric", pattern: "[0-9]*", placeholder: "drawn by the server", class: "study-seed" });
  private readonly navigation = h("input", { type: "checkbox", name: "allow_navigation", class: "study-navigation" });
  private readonly answerChanges = h("input", { type: "checkbox", name: "allow_answer_changes", class: "study-answer-changes" });
  private readonly washoutRow: HTMLElement;
  private readonly groupsRow: HTMLElement;

  /** Per task: whether it is asked, and with a confidence rating. */
  private readonly questionBoxes = new Map<number, { ask: HTMLInputElement; confidence: HTMLInputElement }>();
  private arms: StudyArm[] = [{ name: "unaided", assistance: "unaided", sequential: false }];
  private readonly armsList = h("ol", { class: "study-arms" });
  private readers: ReaderRow[] = [];
  private readonly readersList = h("ol", { class: "study-readers" });
  private readonly membersList = h("ul", { class: "study-members" });

  private candidates: CaseCandidate[] = [];
  /** Chosen cases: id -> training flag. */
  private readonly chosen = new Map<number, boolean>();
  /** Cases already added to the draft by an earlier, partly failed, submit (the API cannot remove one). */
  private readonly added = new Set<number>();
  private readonly casesBox = h("div", { class: "study-cases", "data-state": "idle" });
  private candidatesTicket = 0;

  private readonly errors = h("div", { class: "form-errors error", role: "alert", hidden: true });
  private readonly submit = h("button", { type: "submit", class: "primary study-submit" }, "Create the draft study");
  /** The draft created by an earlier submit that failed at a later step: the next submit updates it. */
  private draft: number | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly project: Project,
    private readonly tasks: LabelTask[],
    private readonly members: Member[],
  ) {
    this.washoutRow = h("label", { class: "field washout-row" }, "Washout between periods (days)", this.washout);
    this.groupsRow = h("label", { class: "field groups-row" }, "Reader groups (one case block each)", this.groups);
    this.design.addEventListener("change", () => this.designChanged());
    this.caseUnit.addEventListener("change", () => void this.loadCandidates());
  }

  render(): void {
    const form = h(
      "form",
      {
        class: "study-form",
        novalidate: true,
        onsubmit: (event: Event) => {
          event.preventDefault();
          void this.save();
        },
      },
      h(
        "fieldset",
        { class: "study-settings" },
        h("legend", {}, "Study"),
        h("label", { class: "field" }, "Name", this.name),
        h("label", { class: "field" }, "Description", this.description),
        h("label", { class: "field" }, "Design", this.design),
        this.washoutRow,
        this.groupsRow,
        h("label", { class: "field" }, "Case unit", this.caseUnit),
        h("label", { class: "field" }, "Seed of the schedule (to reproduce one; blank: drawn)", this.seed),
        h("label", { class: "check" }, this.navigation, " Readers may go back to earlier cases"),
        h("label", { class: "check" }, this.answerChanges, " Readers may change an answer already given"),
      ),
      h(
        "fieldset",
        { class: "study-questions" },
        h("legend", {}, "Questions"),
        this.tasks.length === 0 ? h("p", { class: "muted" }, "The project has no active label task.") : null,
        this.tasks.map((task) => this.questionRow(task)),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Arms (reading conditions)"),
        this.armsList,
        h("button", { type: "button", class: "add-arm", onclick: () => this.addArm() }, "Add an arm"),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Cases"),
        h(
          "p",
          { class: "muted small" },
          "Cases whose reference label is a choice of a question; the reference standard is taken from it. Training cases are read first and left out of the analysis.",
        ),
        this.casesBox,
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Readers"),
        h("p", { class: "muted small" }, "In order: the order counterbalances the order of the arms."),
        h("div", { class: "study-readers-pick" }, h("div", {}, h("h3", {}, "Members"), this.membersList), h("div", {}, h("h3", {}, "Readers"), this.readersList)),
      ),
      this.errors,
      h("div", { class: "row" }, this.submit),
    );
    mount(
      this.root,
      h("p", {}, h("a", { href: `/projects/${this.project.id}`, "data-route": "" }, `← ${this.project.name}`)),
      h("h1", {}, "New reader study"),
      form,
    );
    this.designChanged();
    this.renderArms();
    this.renderReaders();
    void this.loadCandidates();
    this.name.focus();
  }

  private questionRow(task: LabelTask): HTMLElement {
    const ask = h("input", { type: "checkbox", class: "question-ask", "data-task": task.key });
    const confidence = h("input", { type: "checkbox", class: "question-confidence", "data-task": task.key, checked: true });
    ask.addEventListener("change", () => void this.loadCandidates());
    this.questionBoxes.set(task.id, { ask, confidence });
    const choices = task.choices.filter((choice) => choice.is_active).map((choice) => choice.value);
    return h(
      "div",
      { class: "question-row", "data-task": task.key },
      h("label", { class: "check" }, ask, " ", h("strong", {}, task.name), " ", h("span", { class: "muted small" }, `(${choices.join(", ")})`)),
      h("label", { class: "check small" }, confidence, " ask confidence (1–5)"),
    );
  }

  private designChanged(): void {
    const design = this.design.value as Design;
    // A fully crossed study has one period: no washout; reader groups exist only in split-plot.
    this.washoutRow.hidden = design === "fully_crossed";
    this.groupsRow.hidden = design !== "split_plot";
    this.renderReaders();
  }

  private groupCount(): number {
    return this.design.value === "split_plot" ? Math.max(2, Number(this.groups.value) || 2) : 1;
  }

  // --- Arms ------------------------------------------------------------------------------------------

  private addArm(): void {
    const taken = new Set(this.arms.map((arm) => arm.name));
    const assistance: Assistance = taken.has("prediction") ? "prediction_and_cam" : "prediction";
    let name: string = assistance;
    for (let n = 2; taken.has(name); n++) name = `${assistance} ${n}`;
    this.arms.push({ name, assistance, sequential: false });
    this.renderArms();
  }

  private renderArms(): void {
    mount(
      this.armsList,
      this.arms.map((arm, index) => {
        const name = h("input", { class: "arm-name", value: arm.name, "aria-label": `Arm ${index + 1} name`, required: true });
        name.addEventListener("input", () => (arm.name = name.value));
        const assistance = h(
          "select",
          { class: "arm-assistance", "aria-label": `Arm ${index + 1} assistance` },
          ASSISTANCES.map((option) => h("option", { value: option.value, selected: option.value === arm.assistance }, option.label)),
        );
        const sequential = h("input", { type: "checkbox", class: "arm-sequential", checked: arm.sequential, disabled: arm.assistance === "unaided" });
        assistance.addEventListener("change", () => {
          arm.assistance = assistance.value as Assistance;
          // A sequential arm shows the AI after the first answer: an unaided one cannot be.
          if (arm.assistance === "unaided") arm.sequential = false;
          this.renderArms();
        });
        sequential.addEventListener("change", () => (arm.sequential = sequential.checked));
        return h(
          "li",
          { class: "arm-row", "data-arm": index },
          name,
          assistance,
          h("label", { class: "check small", title: "An unaided answer first, then the AI is shown and a revised answer asked" }, sequential, " sequential"),
          h(
            "button",
            {
              type: "button",
              class: "small remove-arm",
              disabled: this.arms.length === 1,
              onclick: () => {
                this.arms.splice(index, 1);
                this.renderArms();
              },
            },
            "Remove",
          ),
        );
      }),
    );
  }

  // --- Readers ---------------------------------------------------------------------------------------

  private renderReaders(): void {
    const groups = this.groupCount();
    for (const reader of this.readers) reader.group = Math.min(reader.group, groups - 1);
    const chosen = new Set(this.readers.map((reader) => reader.member.user));
    mount(
      this.membersList,
      this.members.length === 0 ? h("li", { class: "muted" }, "No members listed.") : null,
      this.members.map((member) =>
        h(
          "li",
          { class: "member-row", "data-user": member.user },
          h("span", {}, member.username, " ", h("span", { class: "muted small" }, member.role)),
          h(
            "button",
            {
              type: "button",
              class: "small add-reader",
              disabled: chosen.has(member.user),
              onclick: () => {
                this.readers.push({ member, group: 0 });
                this.renderReaders();
              },
            },
            "Add as reader",
          ),
        ),
      ),
    );
    mount(
      this.readersList,
      this.readers.length === 0 ? h("li", { class: "muted" }, "No reader yet.") : null,
      this.readers.map((reader, index) => {
        const group = h(
          "select",
          { class: "reader-group", "aria-label": `Group of ${reader.member.username}` },
          Array.from({ length: groups }, (_, value) => h("option", { value, selected: value === reader.group }, `group ${value + 1}`)),
        );
        group.addEventListener("change", () => (reader.group = Number(group.value)));
        return h(
          "li",
          { class: "reader-row", "data-user": reader.member.user, "data-username": reader.member.username },
          h("span", { class: "reader-name" }, reader.member.username),
          groups > 1 ? group : null,
          h("button", { type: "button", class: "small", "aria-label": "Move up", disabled: index === 0, onclick: () => this.moveReader(index, -1) }, "↑"),
          h("button", { type: "button", class: "small", "aria-label": "Move down", disabled: index === this.readers.length - 1, onclick: () => this.moveReader(index, 1) }, "↓"),
          h(
            "button",
            {
              type: "button",
              class: "small remove-reader",
              onclick: () => {
                this.readers.splice(index, 1);
                this.renderReaders();
              },
            },
            "Remove",
          ),
        );
      }),
    );
  }

  private moveReader(index: number, by: number): void {
    const [reader] = this.readers.splice(index, 1);
    this.readers.splice(index + by, 0, reader!);
    this.renderReaders();
  }

  // --- Cases -----------------------------------------------------------------------------------------

  private askedTasks(): { task: LabelTask; confidence: boolean }[] {
    return this.tasks
      .filter((task) => this.questionBoxes.get(task.id)?.ask.checked)
      .map((task) => ({ task, confidence: this.questionBoxes.get(task.id)!.confidence.checked }));
  }

  /** The frames (or examinations) whose reference label is a choice of an asked question. */
  private async loadCandidates(): Promise<void> {
    const ticket = ++this.candidatesTicket;
    const values = [...new Set(this.askedTasks().flatMap(({ task }) => task.choices.filter((c) => c.is_active).map((c) => c.value)))];
    if (values.length === 0) {
      this.candidates = [];
      this.casesBox.dataset.state = "idle";
      mount(this.casesBox, h("p", { class: "muted" }, "Choose the questions first: cases are offered by their reference label."));
      return;
    }
    this.casesBox.dataset.state = "loading";
    mount(this.casesBox, h("p", { class: "muted" }, "Loading the cases with a reference…"));
    let candidates: CaseCandidate[];
    try {
      candidates = await studyApi.caseCandidates(this.project.id, this.caseUnit.value as CaseUnit, values);
    } catch (error) {
      if (ticket !== this.candidatesTicket) return;
      this.casesBox.dataset.state = "error";
      mount(this.casesBox, h("p", { class: "error" }, `The cases could not be loaded: ${error instanceof Error ? error.message : String(error)}`));
      return;
    }
    if (ticket !== this.candidatesTicket) return;
    this.candidates = candidates;
    const known = new Set(candidates.map((candidate) => candidate.id));
    for (const id of [...this.chosen.keys()]) if (!known.has(id)) this.chosen.delete(id);
    this.renderCases();
  }

  private renderCases(): void {
    const unit = this.caseUnit.value === "frame" ? "frame" : "examination";
    const training = [...this.chosen.values()].filter(Boolean).length;
    const summary = h(
      "span",
      { class: "cases-summary", "data-selected": this.chosen.size, "data-training": training, "data-candidates": this.candidates.length },
      `${this.chosen.size} of ${this.candidates.length} ${unit}s with a reference chosen, ${training} for training`,
    );
    const shown = this.candidates.slice(0, CASE_ROWS_SHOWN);
    this.casesBox.dataset.state = "ready";
    mount(
      this.casesBox,
      h(
        "div",
        { class: "row" },
        h(
          "button",
          {
            type: "button",
            class: "select-all-cases",
            disabled: this.candidates.length === 0,
            onclick: () => {
              for (const candidate of this.candidates) if (!this.chosen.has(candidate.id)) this.chosen.set(candidate.id, false);
              this.renderCases();
            },
          },
          "Select all with reference",
        ),
        h(
          "button",
          {
            type: "button",
            class: "clear-cases",
            onclick: () => {
              this.chosen.clear();
              this.renderCases();
            },
          },
          "Clear",
        ),
        summary,
      ),
      this.candidates.length === 0
        ? h("p", { class: "muted" }, `No ${unit} of the project has a reference label that is a choice of the chosen questions.`)
        : h(
            "table",
            { class: "data cases-table" },
            h("thead", {}, h("tr", {}, h("th", {}, "Case"), h("th", {}, "Training"), h("th", {}, unit === "frame" ? "Frame" : "Examination"), h("th", {}, "Reference"))),
            h(
              "tbody",
              {},
              shown.map((candidate) => this.caseRow(candidate)),
            ),
          ),
      shown.length < this.candidates.length
        ? h("p", { class: "muted small" }, `The first ${shown.length} of ${this.candidates.length} are listed; "Select all" takes every one.`)
        : null,
      this.added.size > 0 ? h("p", { class: "muted small" }, `${this.added.size} cases are already in the draft.`) : null,
    );
  }

  private caseRow(candidate: CaseCandidate): HTMLElement {
    const include = h("input", { type: "checkbox", class: "case-include", checked: this.chosen.has(candidate.id), "aria-label": `Case ${candidate.id}` });
    const training = h("input", {
      type: "checkbox",
      class: "case-training",
      checked: this.chosen.get(candidate.id) === true,
      disabled: !this.chosen.has(candidate.id),
      "aria-label": `Case ${candidate.id} is a training case`,
    });
    include.addEventListener("change", () => {
      if (include.checked) this.chosen.set(candidate.id, false);
      else this.chosen.delete(candidate.id);
      this.renderCases();
    });
    training.addEventListener("change", () => {
      this.chosen.set(candidate.id, training.checked);
      this.renderCases();
    });
    return h(
      "tr",
      { "data-case": candidate.id },
      h("td", {}, include),
      h("td", {}, training),
      h("td", {}, `${candidate.id} · ${candidate.description}`),
      h("td", {}, candidate.reference),
    );
  }

  // --- Submit ----------------------------------------------------------------------------------------

  private settings(): StudySettings {
    const design = this.design.value as Design;
    return {
      name: this.name.value.trim(),
      description: this.description.value,
      design,
      case_unit: this.caseUnit.value as CaseUnit,
      washout_days: design === "fully_crossed" ? 0 : Number(this.washout.value) || 0,
      reader_groups: this.groupCount(),
      allow_navigation: this.navigation.checked,
      allow_answer_changes: this.answerChanges.checked,
    };
  }

  /** What the API would refuse halfway through: checked before anything is created. */
  private missing(): string[] {
    const problems = [];
    if (!this.name.value.trim()) problems.push("Name the study.");
    if (this.askedTasks().length === 0) problems.push("Ask at least one question.");
    if (this.arms.length === 0) problems.push("Define at least one arm.");
    if (this.chosen.size === 0) problems.push("Choose at least one case.");
    if (this.readers.length === 0) problems.push("Add at least one reader.");
    const seed = this.seed.value.trim();
    if (seed && !/^\d+$/.test(seed)) problems.push("The seed is a whole number (0 or more), or blank.");
    return problems;
  }

  private showErrors(title: string, messages: string[]): void {
    mount(
      this.errors,
      h("strong", {}, title),
      h(
        "ul",
        {},
        messages.map((message) => h("li", {}, message)),
      ),
      this.draft !== null
        ? h(
            "p",
            { class: "small" },
            "The draft was created; submitting again updates it. Or open ",
            h("a", { href: `/studies/${this.draft}`, "data-route": "" }, "its page"),
            ".",
          )
        : null,
    );
    this.errors.hidden = false;
    this.errors.scrollIntoView({ block: "nearest" });
  }

  private async save(): Promise<void> {
    const problems = this.missing();
    if (problems.length > 0) {
      this.showErrors("The design is incomplete:", problems);
      return;
    }
    this.errors.hidden = true;
    this.submit.disabled = true;
    const unit = this.caseUnit.value;
    let step = "study";
    try {
      const settings = this.settings();
      const seed = this.seed.value.trim() || null;
      // Cases go last: they are the one part the API adds to rather than replaces, so every earlier
      // step can be repeated by a second submit after a refusal.
      const study = this.draft === null ? await studyApi.create(this.project.id, settings, seed) : await studyApi.update(this.draft, settings);
      this.draft = study.id;
      step = "questions";
      await studyApi.setQuestions(
        study.id,
        this.askedTasks().map(({ task, confidence }) => ({ task: task.key, ask_confidence: confidence })),
      );
      step = "arms";
      await studyApi.setArms(
        study.id,
        this.arms.map((arm) => ({ name: arm.name.trim(), assistance: arm.assistance, sequential: arm.sequential })),
      );
      step = "readers";
      await studyApi.setReaders(
        study.id,
        this.readers.map((reader) => ({ user: reader.member.user, group: reader.group })),
      );
      step = "cases";
      const cases: CaseInput[] = [...this.chosen]
        .filter(([id]) => !this.added.has(id))
        .map(([id, training]) => (unit === "frame" ? { frame: id, is_training: training } : { examination: id, is_training: training }));
      for (let start = 0; start < cases.length; start += CASES_PER_REQUEST) {
        const chunk = cases.slice(start, start + CASES_PER_REQUEST);
        await studyApi.addCases(study.id, chunk);
        for (const row of chunk) this.added.add((row.frame ?? row.examination)!);
      }
      navigate(`/studies/${study.id}`);
    } catch (error) {
      const messages =
        error instanceof ApiError ? errorMessages(error.body) : [error instanceof Error ? error.message : String(error)];
      this.showErrors(`The server refused the ${step}:`, messages.length > 0 ? messages : [String(error)]);
      if (step === "cases") this.renderCases();
    } finally {
      this.submit.disabled = false;
    }
  }
}
