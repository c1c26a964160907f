// Reader studies for their coordinators: the project page's "Reader studies" section, the design
// form (studyform.ts) and a study's dashboard (design, progress, open/lock, results in
// studyresults.ts). Readers find their reading sessions on the project page.

import { ApiError, type Project } from "./api";
import { h, mount } from "./dom";
import { pageState } from "./panels";
import { MISSING, sessionProgress, sessionState } from "./studyformat";
import { ASSISTANCES, DESIGNS, STUDY_MANAGER_ROLES, studyApi, type ReadingSession, type SessionProgress, type Study, type StudyResults } from "./studyapi";
import { resultsSection } from "./studyresults";

export { studyNewView } from "./studyform";

const STATUS_NAMES: Record<Study["status"], string> = { draft: "Draft", open: "Open", locked: "Locked" };
const DESIGN_NAMES: Record<string, string> = { fully_crossed: "Fully crossed", crossover: "Crossover", split_plot: "Split-plot" };

function statusBadge(study: Pick<Study, "status">): HTMLElement {
  return h("span", { class: `badge status status-${study.status}`, "data-status": study.status }, STATUS_NAMES[study.status] ?? study.status);
}

function formatDate(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : MISSING;
}

// --- The project page's section ---------------------------------------------------------------------

/** The project page's "Reader studies": the studies (coordinators and admins) and the caller's own
 * reading sessions in this project's studies (everyone). Fills itself in; hidden when it has nothing
 * to show. */
export function projectStudiesSection(project: Pick<Project, "id" | "role">): HTMLElement {
  const section = h("section", { class: "project-studies", "data-state": "loading" }, h("h2", {}, "Reader studies"), h("p", { class: "muted" }, "Loading reader studies…"));
  fillStudiesSection(section, project).catch((error: unknown) => {
    section.dataset.state = "error";
    mount(section, h("h2", {}, "Reader studies"), h("p", { class: "error" }, `The reader studies could not be loaded: ${error instanceof Error ? error.message : String(error)}`));
  });
  return section;
}

async function fillStudiesSection(section: HTMLElement, project: Pick<Project, "id" | "role">): Promise<void> {
  const manages = STUDY_MANAGER_ROLES.has(project.role ?? "");
  const [studies, sessions] = await Promise.all([studyApi.list(project.id), studyApi.mySessions()]);
  // The sessions endpoint lists every study's; the studies visible here are this project's.
  const here = new Set(studies.map((study) => study.id));
  const mine = sessions.filter((session) => here.has(session.study));
  section.dataset.state = "ready";
  if (!manages && mine.length === 0) {
    section.hidden = true;
    return;
  }
  mount(
    section,
    h("h2", {}, "Reader studies"),
    manages ? studiesTable(project.id, studies) : null,
    mine.length > 0 ? mySessionsList(mine) : null,
  );
}

function studiesTable(project: number, studies: Study[]): HTMLElement {
  return h(
    "div",
    { class: "studies-list" },
    h("p", {}, h("a", { class: "new-study", href: `/studies/new/${project}`, "data-route": "" }, "New study")),
    studies.length === 0
      ? h("p", { class: "muted" }, "No reader study yet.")
      : h(
          "table",
          { class: "data studies-table" },
          h("thead", {}, h("tr", {}, h("th", {}, "Study"), h("th", {}, "Design"), h("th", {}, "Status"), h("th", {}, "Cases"))),
          h(
            "tbody",
            {},
            studies.map((study) =>
              h(
                "tr",
                { "data-study": study.id },
                h("td", {}, h("a", { href: `/studies/${study.id}`, "data-route": "", class: "study-link" }, study.name)),
                h("td", {}, DESIGN_NAMES[study.design] ?? study.design),
                h("td", {}, statusBadge(study)),
                h("td", {}, `${study.case_count}${study.training_case_count ? ` (${study.training_case_count} training)` : ""}`),
              ),
            ),
          ),
        ),
  );
}

function mySessionsList(sessions: ReadingSession[]): HTMLElement {
  return h(
    "div",
    { class: "my-sessions" },
    h("h3", {}, "Your reading sessions"),
    h(
      "ul",
      { class: "session-list" },
      sessions.map((session) => {
        const state = sessionState(session);
        return h(
          "li",
          { class: `session-item ${state.state}`, "data-session": session.id, "data-state": state.state },
          h("span", { class: "session-study" }, session.study_name),
          h("span", { class: "muted" }, ` · ${session.arm.name} · period ${session.period} · `),
          h("span", { class: "session-progress" }, sessionProgress(session)),
          " ",
          state.state === "available"
            ? h("a", { class: "read-link", href: `/read/${session.id}`, "data-route": "" }, session.started_at ? "Continue reading" : "Start reading")
            : h("span", { class: state.state === "waiting" ? "session-reason muted" : "session-done muted" }, state.text),
        );
      }),
    ),
  );
}

// --- The dashboard -------------------------------------------------------------------------------------

export async function studyView(root: HTMLElement, id: number): Promise<void> {
  mount(root, h("p", { class: "muted" }, "Loading the study…"));
  let loaded: { study: Study; seed: string };
  try {
    loaded = await studyApi.getExact(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      mount(root, pageState("not-found", "Not found", "This study does not exist, or you cannot see it."));
      return;
    }
    throw error;
  }
  let progress: SessionProgress[];
  let sessions: ReadingSession[];
  try {
    [progress, sessions] = await Promise.all([studyApi.progress(id), studyApi.sessions(id)]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      mount(
        root,
        pageState(
          "not-allowed",
          "Not allowed",
          "Only the project's coordinators and admins see a study's dashboard. Your reading sessions are on the project page.",
        ),
      );
      return;
    }
    throw error;
  }
  new StudyDashboard(root, loaded.study, loaded.seed, progress, sessions).render();
}

class StudyDashboard {
  private readonly readersBox = h("span", { class: "design-readers" }, MISSING);
  private readonly progressBox = h("div", { class: "study-progress" });
  private readonly actionsBox = h("div", { class: "study-actions" });

  constructor(
    private readonly root: HTMLElement,
    private study: Study,
    private readonly seed: string,
    private progress: SessionProgress[],
    private sessions: ReadingSession[],
  ) {}

  render(): void {
    const study = this.study;
    document.title = `${study.name} · CLEAR`;
    mount(
      this.root,
      h("p", {}, h("a", { href: `/projects/${study.project}`, "data-route": "" }, "← Project")),
      h("h1", { class: "study-title" }, study.name, " ", statusBadge(study)),
      h("p", { class: "study-facts muted" }, this.facts()),
      study.description ? h("p", { class: "study-description" }, study.description) : null,
      this.actionsBox,
      h("h2", {}, "Design"),
      this.designSummary(),
      study.status === "draft" ? null : h("h2", {}, "Progress"),
      study.status === "draft" ? null : this.progressBox,
      study.status === "draft" ? null : h("h2", {}, "Results"),
      study.status === "draft" ? null : resultsSection(study, this.seed, (results) => this.showReaders(results)),
    );
    this.renderActions();
    this.renderProgress();
    if (study.status === "draft") void this.loadDraftReaders();
  }

  private facts(): string {
    const study = this.study;
    const parts = [
      DESIGNS.find((design) => design.value === study.design)?.label ?? study.design,
      study.design === "fully_crossed" ? null : `washout ${study.washout_days} day${study.washout_days === 1 ? "" : "s"}`,
      study.design === "split_plot" ? `${study.reader_groups} reader groups` : null,
      `a case is ${study.case_unit === "frame" ? "a frame" : "an examination"}`,
      `seed ${this.seed}`,
      study.allow_navigation ? "readers may go back" : "no going back",
      study.allow_answer_changes ? "answers may change" : "answers are final",
      study.opened_at ? `opened ${formatDate(study.opened_at)}` : null,
      study.locked_at ? `locked ${formatDate(study.locked_at)}` : null,
    ];
    return parts.filter(Boolean).join(" · ");
  }

  private designSummary(): HTMLElement {
    const study = this.study;
    return h(
      "dl",
      { class: "design-summary" },
      h("dt", {}, "Questions"),
      h(
        "dd",
        { class: "design-questions" },
        study.questions.length === 0
          ? MISSING
          : study.questions.map((question, index) => [
              index ? "; " : "",
              h("span", { "data-question": question.task_key }, question.task_name),
              question.ask_confidence ? " with confidence" : "",
              question.model_version !== null ? h("span", { class: "muted" }, ` (AI: model version ${question.model_version})`) : "",
            ]),
      ),
      h("dt", {}, "Arms"),
      h(
        "dd",
        { class: "design-arms" },
        study.arms.length === 0
          ? MISSING
          : study.arms.map((arm, index) => [
              index ? "; " : "",
              h("span", { "data-arm": arm.name }, arm.name),
              h("span", { class: "muted" }, ` (${ASSISTANCES.find((option) => option.value === arm.assistance)?.label ?? arm.assistance}${arm.sequential ? ", sequential" : ""})`),
            ]),
      ),
      h("dt", {}, "Cases"),
      h(
        "dd",
        { class: "design-cases", "data-cases": study.case_count, "data-training": study.training_case_count },
        `${study.case_count} cases, of which ${study.training_case_count} for training`,
      ),
      h("dt", {}, "Readers"),
      h("dd", {}, this.readersBox),
    );
  }

  /** The readers with their position and group, from the results (the API lists them nowhere else). */
  private showReaders(results: Pick<StudyResults, "readers">): void {
    const groups = new Set(results.readers.map((reader) => reader.group)).size > 1;
    this.readersBox.dataset.count = String(results.readers.length);
    mount(
      this.readersBox,
      results.readers.length === 0
        ? MISSING
        : results.readers.map((reader, index) => [index ? ", " : "", `${reader.position + 1}. ${reader.reader}`, groups ? ` (group ${reader.group + 1})` : ""]),
    );
  }

  /** A draft has no sessions yet; its readers come from a results call without readings (cheap). */
  private async loadDraftReaders(): Promise<void> {
    if (this.study.questions.length === 0) return;
    try {
      this.showReaders(await studyApi.results(this.study.id, { resamples: 100 }));
    } catch {
      // An incomplete draft may be refused; the summary keeps its dash.
    }
  }

  private renderActions(): void {
    const study = this.study;
    const message = h("div", { class: "action-message", role: "alert", hidden: true });
    const fail = (error: unknown) => {
      message.className = "action-message error";
      message.textContent = error instanceof Error ? error.message : String(error);
      message.hidden = false;
    };
    if (study.status === "draft") {
      const open = h(
        "button",
        {
          class: "primary open-study",
          onclick: async () => {
            open.disabled = true;
            message.hidden = true;
            try {
              this.study = await studyApi.open(study.id);
              await this.reload();
            } catch (error) {
              fail(error);
              open.disabled = false;
            }
          },
        },
        "Open study",
      );
      mount(this.actionsBox, h("div", { class: "row" }, open, h("span", { class: "muted small" }, "Opening freezes the design and gives every reader their sessions.")), message);
      return;
    }
    if (study.status === "open") {
      const confirm = h("div", { class: "lock-confirm", hidden: true });
      const lock = h(
        "button",
        {
          class: "lock-study",
          onclick: () => {
            confirm.hidden = false;
            lock.disabled = true;
          },
        },
        "Lock study",
      );
      const yes = h(
        "button",
        {
          class: "primary lock-confirm-yes",
          onclick: async () => {
            yes.disabled = true;
            try {
              this.study = await studyApi.lock(study.id);
              await this.reload();
            } catch (error) {
              fail(error);
              yes.disabled = false;
            }
          },
        },
        "Lock: readings become immutable",
      );
      const no = h(
        "button",
        {
          class: "lock-confirm-no",
          onclick: () => {
            confirm.hidden = true;
            lock.disabled = false;
          },
        },
        "Cancel",
      );
      mount(confirm, h("span", {}, "Lock the study? No reader can answer or change an answer afterwards. "), yes, " ", no);
      mount(this.actionsBox, h("div", { class: "row" }, lock, confirm), message);
      return;
    }
    mount(this.actionsBox, h("p", { class: "muted locked-note" }, `Locked ${formatDate(study.locked_at)}: the readings are immutable.`));
  }

  private async reload(): Promise<void> {
    const [loaded, progress, sessions] = await Promise.all([studyApi.getExact(this.study.id), studyApi.progress(this.study.id), studyApi.sessions(this.study.id)]);
    this.study = loaded.study;
    this.progress = progress;
    this.sessions = sessions;
    this.render();
  }

  private renderProgress(): void {
    const refresh = h(
      "button",
      {
        class: "small refresh-progress",
        onclick: async () => {
          refresh.disabled = true;
          try {
            [this.progress, this.sessions] = await Promise.all([studyApi.progress(this.study.id), studyApi.sessions(this.study.id)]);
            this.renderProgress();
          } finally {
            refresh.disabled = false;
          }
        },
      },
      "Refresh",
    );
    mount(this.progressBox, h("div", { class: "row" }, refresh, h("span", { class: "muted small" }, `As of ${new Date().toLocaleTimeString()}`)), progressTable(this.study, this.progress, this.sessions));
  }
}

/** Readers down, arms across: cases answered of the session's cases, its period and where it stands. */
function progressTable(study: Study, progress: SessionProgress[], sessions: ReadingSession[]): HTMLElement {
  if (progress.length === 0) return h("p", { class: "muted" }, "No reading session.");
  const bySession = new Map(sessions.map((session) => [session.id, session]));
  const readers = [...new Map(progress.map((row) => [row.reader, row.reader_username])).entries()];
  const arms = study.arms.map((arm) => arm.name);
  const cell = (reader: number, arm: string) => {
    const row = progress.find((candidate) => candidate.reader === reader && candidate.arm === arm);
    if (!row) return h("td", { class: "muted" }, MISSING);
    const session = bySession.get(row.session);
    const state = row.completed_at ? "completed" : session && !session.available ? "waiting" : row.started_at ? "reading" : "not started";
    const note = state === "waiting" && session ? session.unavailable_reason : state;
    return h(
      "td",
      { "data-arm": arm, "data-done": row.cases_done, "data-total": row.cases_total, "data-state": state },
      h("span", { class: "progress-count" }, `${row.cases_done} / ${row.cases_total}`),
      h("span", { class: "muted small" }, ` · period ${row.period} · ${note}`),
      session?.available_from && state === "waiting" ? h("span", { class: "muted small" }, ` (from ${formatDate(session.available_from)})`) : null,
    );
  };
  const totals = (reader: number) => {
    const rows = progress.filter((row) => row.reader === reader);
    return `${rows.reduce((sum, row) => sum + row.cases_done, 0)} / ${rows.reduce((sum, row) => sum + row.cases_total, 0)}`;
  };
  return h(
    "table",
    { class: "data progress-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Reader"), arms.map((arm) => h("th", {}, arm)), h("th", {}, "All arms"))),
    h(
      "tbody",
      {},
      readers.map(([reader, username]) =>
        h("tr", { "data-reader": username }, h("th", { scope: "row" }, username), arms.map((arm) => cell(reader, arm)), h("td", { class: "progress-total" }, totals(reader))),
      ),
    ),
  );
}
