// The reviewer's page: one project, one task, the frames whose annotators disagree.
//
// Keyboard first, like the workspace: a choice's hotkey records the adjudicated value (with the
// rationale typed after Shift+N, if any) and moves on; the save goes out in the background through
// the same SaveManager as labels (idempotency key per decision, retries with the same key, 409 shown
// as a conflict). The frame is shown by the workspace's FrameStage (zoom, pan, brightness, contrast),
// decoded ahead by the Prefetcher; the list walks with the workspace's FrameList.

import { adjudicationTransport, ApiError, api, type Choice, type FrameContext, type LabelTask, type Project } from "./api";
import { h, mount } from "./dom";
import { buildKeymap, CONFIDENCE_NAMES, describeKey, KeymapError, repeatable, type Keymap } from "./keymap";
import { conflictModal, contextList, helpModal, pageState, Toast, versionText } from "./panels";
import { decodeImage, Prefetcher } from "./prefetch";
import { FrameList, type QueueFrame, type RefillTicket } from "./queue";
import {
  ADJUDICATION_CODEC,
  asQueuePage,
  goneFromList,
  parseAdjudication,
  REVIEW_BINDINGS,
  REVIEW_STATUSES,
  ReviewCounts,
  sameDecision,
  STATUS_NAMES,
  tally,
  type Decision,
  type ReviewAction,
  type ReviewItem,
  type ReviewPage as ReviewQueuePage,
  type ReviewStatus,
  type ServerDecision,
} from "./review";
import { SaveManager, type SaveOp } from "./saves";
import { FrameStage, isViewAction } from "./stage";

const AHEAD = 3;
const BEHIND = 1;

export interface ReviewPageOptions {
  project: number;
  task: number;
  status: ReviewStatus;
}

type Phase = "loading" | "frame" | "waiting" | "done" | "empty";
type DecisionOp = SaveOp<Decision, ServerDecision>;

const STATE_TEXT: Record<string, string> = {
  saving: "saving…",
  saved: "saved",
  failed: "not saved",
  conflict: "conflict",
  resolved: "saved",
  superseded: "saved",
};

export class ReviewPage {
  private list = new FrameList();
  private counts = new ReviewCounts();
  private readonly items = new Map<number, ReviewItem>();
  private readonly saves: SaveManager<Decision, ServerDecision>;
  private readonly prefetcher = new Prefetcher(decodeImage);
  private readonly contexts = new Map<number, FrameContext>();
  /** Rationales typed for a frame and not yet sent with a decision. */
  private readonly drafts = new Map<number, string>();
  private keymap!: Keymap<ReviewAction>;
  private project!: Project;
  private task!: LabelTask;
  /** Every choice of the task, inactive ones too (annotations may hold them), by value. */
  private choices = new Map<string, Choice>();
  private activeChoices: Choice[] = [];
  private status: ReviewStatus;
  /** Bumped by a switch of list, so that an answer for the previous list is dropped. */
  private generation = 0;
  private phase: Phase = "loading";
  private helpOpen = false;
  private disposed = false;
  private readonly cleanups: (() => void)[] = [];
  private readonly toaster = new Toast();
  private readonly stage = new FrameStage({
    sizeHint: () => {
      const frame = this.list.current();
      return { width: frame?.width ?? 1, height: frame?.height ?? 1 };
    },
    dispatch: (action) => this.dispatch(action),
  });

  // The side's sections are re-rendered one by one; the rationale field is never rebuilt, so typing
  // in it survives every save and count update.
  private readonly el = {
    side: h("aside", { class: "side" }),
    head: h("section", { class: "panel review-head" }),
    annotations: h("section", { class: "panel review-annotations" }),
    decision: h("section", { class: "panel review-decision" }),
    rationalePanel: h("section", { class: "panel review-rationale" }),
    rationale: h("textarea", {
      class: "rationale",
      name: "rationale",
      rows: "3",
      maxlength: "2000",
      placeholder: "Why (optional)",
      "aria-label": "Rationale",
    }),
    context: h("section", { class: "panel context" }),
    view: h("div", { class: "view-slot" }),
    savesPanel: h("section", { class: "panel saves" }),
    footer: h("footer", { class: "ws-footer" }),
    modal: h("div", { class: "modal-root" }),
  };

  constructor(
    private readonly root: HTMLElement,
    private readonly options: ReviewPageOptions,
  ) {
    this.status = options.status;
    this.saves = new SaveManager<Decision, ServerDecision>({
      transport: adjudicationTransport(options.task),
      codec: ADJUDICATION_CODEC,
    });
  }

  /** Load project, task and the first frames; not found (404) and not allowed (403) are states. */
  async start(): Promise<void> {
    mount(this.root, h("div", { class: "center muted" }, "Loading review…"));
    let tasks: LabelTask[];
    try {
      [this.project, tasks] = await Promise.all([api.project(this.options.project), api.allTasks(this.options.project)]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return this.notFound();
      throw error;
    }
    const task = tasks.find((candidate) => candidate.id === this.options.task);
    if (!task) return this.notFound();
    this.task = task;
    const ordered = [...task.choices].sort((a, b) => a.order - b.order || a.id - b.id);
    this.choices = new Map(ordered.map((choice) => [choice.value, choice]));
    this.activeChoices = ordered.filter((choice) => choice.is_active);
    try {
      this.keymap = buildKeymap(this.activeChoices, REVIEW_BINDINGS, "Decide");
    } catch (error) {
      if (error instanceof KeymapError) {
        mount(this.root, h("div", { class: "center error", role: "alert" }, error.message));
        return;
      }
      throw error;
    }
    // The review API decides who may review: a member without the role gets 403.
    const ticket = this.list.beginRefill(new Set());
    let page: ReviewQueuePage;
    try {
      page = await api.review(this.project.id, this.task.id, this.status, ticket.limit);
    } catch (error) {
      this.list.failRefill();
      if (error instanceof ApiError && error.status === 403) return this.notAllowed();
      if (error instanceof ApiError && error.status === 404) return this.notFound();
      throw error;
    }
    if (this.disposed) return;
    this.layout();
    this.listen();
    this.take(ticket, page);
    await this.begin();
  }

  dispose(): void {
    this.disposed = true;
    for (const cleanup of this.cleanups) cleanup();
    this.toaster.dispose();
  }

  private notFound(): void {
    mount(this.root, pageState("not-found", "Not found", "This project or task does not exist, or you are not a member of it."));
  }

  private notAllowed(): void {
    mount(
      this.root,
      pageState(
        "not-allowed",
        "Not allowed",
        "Only the reviewers, coordinators and admins of this project review disagreements and record adjudicated labels.",
      ),
    );
  }

  /** The list's first frame, or the empty state. */
  private async begin(): Promise<void> {
    if (this.list.frames.length === 0) {
      this.phase = "empty";
      this.renderAll();
      return;
    }
    this.phase = "waiting";
    await this.show();
  }

  // --- Layout and rendering ----------------------------------------------------------------------

  private layout(): void {
    document.title = `Review · ${this.task.name} · ${this.project.name} · CLEAR`;
    this.stage.controls = this.el.side;
    mount(
      this.el.rationalePanel,
      h("label", { class: "panel-title", for: "rationale" }, "Rationale ", h("span", { class: "muted small" }, "(Shift+N)")),
      this.el.rationale,
      h("div", { class: "muted small" }, "Enter: save · Shift+Enter: new line · Esc: back to the keys"),
    );
    this.el.rationale.id = "rationale";
    this.el.side.replaceChildren(
      this.el.head,
      this.el.annotations,
      this.el.decision,
      this.el.rationalePanel,
      this.el.context,
      this.el.view,
      this.el.savesPanel,
      h(
        "section",
        { class: "panel" },
        h("button", { class: "link", tabindex: "-1", onclick: () => this.dispatch({ kind: "help" }) }, "Keyboard shortcuts (?)"),
      ),
    );
    mount(
      this.root,
      h(
        "div",
        { class: "workspace review", "data-task": this.task.id, "data-status": this.status },
        h("main", { class: "stage-wrap" }, this.stage.element),
        this.el.side,
        this.el.footer,
        this.el.modal,
        this.toaster.element,
      ),
    );
    this.renderAll();
  }

  private renderAll(): void {
    this.renderSide();
    this.renderFooter();
    this.renderStageNote();
    this.renderModal();
  }

  private current(): QueueFrame | undefined {
    return this.phase === "frame" || this.phase === "waiting" ? this.list.current() : undefined;
  }

  private renderStageNote(): void {
    const done: Record<ReviewStatus, string> = {
      open: "No open disagreement left in this list. ← goes back to the last one.",
      adjudicated: "End of the adjudicated frames. ← goes back to the last one.",
      all: "End of the disagreements. ← goes back to the last one.",
    };
    const empty: Record<ReviewStatus, string> = {
      open: "No open disagreements for this task: every frame where annotators disagree is adjudicated.",
      adjudicated: "No frame of this task is adjudicated yet.",
      all: "The annotators agree on every frame of this task that two or more of them labelled.",
    };
    const notes: Record<Phase, string> = {
      loading: "Loading frames…",
      waiting: "Loading the frame…",
      frame: "",
      done: done[this.status],
      empty: empty[this.status],
    };
    const text = notes[this.phase];
    this.stage.note.textContent = text;
    this.stage.note.hidden = text === "";
    this.stage.element.dataset.phase = this.phase;
    this.stage.layer.hidden = this.phase === "done" || this.phase === "empty" || this.phase === "loading";
  }

  private decidedSet(): Set<number> {
    const decided = new Set<number>();
    for (const id of this.items.keys()) if (this.saves.displayOf(id)) decided.add(id);
    return decided;
  }

  private renderSide(): void {
    const frame = this.current();
    const item = frame ? this.items.get(frame.id) : undefined;
    // Only a frame on screen takes a rationale (not the done or empty states).
    this.el.rationale.disabled = !frame || !this.task.is_active;
    if (!frame) this.el.rationale.value = "";
    this.renderHead();
    this.renderAnnotations(item);
    this.renderDecision(frame);
    mount(
      this.el.context,
      h("div", { class: "panel-title" }, "Examination"),
      frame ? contextList(frame, this.contexts.get(frame.id)) : h("div", { class: "muted small" }, "—"),
    );
    mount(this.el.view, this.stage.viewPanel());
    this.renderSaves();
  }

  private renderHead(): void {
    const counts = this.counts.shown(this.decidedSet());
    const countOf: Record<ReviewStatus, number | null> = {
      open: counts.open,
      adjudicated: counts.adjudicated,
      all: null,
    };
    const keys: Record<ReviewStatus, string> = { open: "Shift+O", adjudicated: "Shift+A", all: "Shift+L" };
    mount(
      this.el.head,
      h("div", { class: "panel-title" }, h("a", { href: `/projects/${this.project.id}`, "data-route": "" }, this.project.name), " · Review"),
      h("div", { class: "review-task" }, this.task.name, this.task.is_active ? null : h("span", { class: "badge" }, "inactive")),
      h(
        "div",
        { class: "review-tabs", role: "tablist", "aria-label": "Which frames" },
        REVIEW_STATUSES.map((status) =>
          h(
            "button",
            {
              class: `review-tab${status === this.status ? " on" : ""}`,
              role: "tab",
              "aria-selected": String(status === this.status),
              "data-status": status,
              tabindex: "-1",
              title: `${STATUS_NAMES[status]} (${keys[status]})`,
              onclick: () => this.dispatch({ kind: "status", status }),
            },
            status === "all" ? "All" : STATUS_NAMES[status],
            countOf[status] === null ? null : h("span", { class: "count" }, ` ${countOf[status]}`),
          ),
        ),
      ),
      h(
        "div",
        {
          class: "review-counts small",
          "data-open": counts.open ?? "",
          "data-adjudicated": counts.adjudicated ?? "",
        },
        counts.open === null ? "…" : `${counts.open} open · ${counts.adjudicated} adjudicated`,
      ),
    );
  }

  private choiceLabel(value: string): HTMLElement {
    const choice = this.choices.get(value);
    return h(
      "span",
      { class: "choice-ref", "data-value": value },
      h("span", { class: "swatch", style: { background: choice?.color ?? "#888" } }),
      ` ${choice?.label ?? value}`,
    );
  }

  private renderAnnotations(item: ReviewItem | undefined): void {
    if (!item) {
      mount(this.el.annotations, h("div", { class: "panel-title" }, "Annotators"), h("div", { class: "muted small" }, "—"));
      return;
    }
    const values = tally(item.annotations);
    const summary = item.disagreement
      ? `${item.annotations.length} annotators disagree: ${values.map(({ value, count }) => `${this.choices.get(value)?.label ?? value} ×${count}`).join(", ")}`
      : "The annotators agree now";
    mount(
      this.el.annotations,
      h("div", { class: "panel-title" }, "Annotators"),
      h("div", { class: `agreement small ${item.disagreement ? "disagree" : "agree"}`, "data-disagreement": String(item.disagreement) }, summary),
      h(
        "ul",
        { class: "annotation-list" },
        item.annotations.map((annotation) =>
          h(
            "li",
            {
              class: "annotation",
              "data-annotator": annotation.annotator_username,
              "data-value": annotation.value,
              "data-confidence": annotation.confidence,
            },
            h("span", { class: "annotator" }, annotation.annotator_username),
            this.choiceLabel(annotation.value),
            h(
              "span",
              { class: "muted small", title: CONFIDENCE_NAMES[annotation.confidence as 1 | 2 | 3 | 4 | 5] ?? "" },
              `confidence ${annotation.confidence}`,
            ),
            annotation.ai_shown ? h("span", { class: "badge" }, "AI shown") : null,
          ),
        ),
      ),
    );
  }

  private renderDecision(frame: QueueFrame | undefined): void {
    const decision = frame ? this.saves.displayOf(frame.id) : null;
    const latest = frame ? this.saves.latestFor(frame.id) : undefined;
    const known = frame ? this.saves.knownOf(frame.id) : undefined;
    let current: HTMLElement;
    if (!frame) {
      current = h("div", { class: "decision-current muted", "data-state": "none" }, "—");
    } else if (!decision) {
      current = h("div", { class: "decision-current muted", "data-state": "none" }, "Not adjudicated yet");
    } else {
      const state = latest?.state ?? "saved";
      const settled = state !== "saving" && state !== "failed" && state !== "conflict" && known;
      current = h(
        "div",
        { class: `decision-current current-label state-${state}`, "data-state": state, "data-value": decision.value },
        this.choiceLabel(decision.value),
        " · ",
        h("span", { class: "save-state" }, STATE_TEXT[state] ?? state),
        decision.rationale ? h("div", { class: "decision-rationale small" }, `“${decision.rationale}”`) : null,
        settled ? h("div", { class: "muted small" }, `by ${known.adjudicatedBy} · ${versionText(known.version, known.updatedAt)}`) : null,
      );
    }
    mount(
      this.el.decision,
      h("div", { class: "panel-title" }, "Adjudicated label"),
      this.task.is_active
        ? null
        : h("div", { class: "small error" }, "This task is inactive: its adjudications cannot change."),
      h(
        "ul",
        { class: "choices" },
        this.activeChoices.map((choice) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                class: `choice${decision?.value === choice.value ? " chosen" : ""}`,
                "data-value": choice.value,
                tabindex: "-1",
                disabled: !this.task.is_active,
                onclick: () => this.dispatch({ kind: "choice", value: choice.value }),
              },
              h("span", { class: "swatch", style: { background: choice.color } }),
              h("span", { class: "choice-label" }, choice.label),
              choice.hotkey ? h("kbd", {}, choice.hotkey) : null,
            ),
          ),
        ),
      ),
      current,
    );
  }

  private describeDecision(decision: Decision | null): HTMLElement {
    if (!decision) return h("span", { class: "muted" }, "no adjudication");
    return h(
      "span",
      {},
      this.choiceLabel(decision.value),
      decision.rationale ? h("span", { class: "decision-rationale" }, ` — “${decision.rationale}”`) : null,
    );
  }

  private renderSaves(): void {
    const recent = this.saves.ops.filter((op) => op.state !== "superseded").slice(-8).reverse();
    const failed = this.saves.failed().filter((op) => op.retryable).length;
    mount(
      this.el.savesPanel,
      h(
        "div",
        { class: "panel-title" },
        "Decisions ",
        this.saves.pending() > 0 ? h("span", { class: "muted small" }, `${this.saves.pending()} on the way`) : null,
      ),
      recent.length === 0
        ? h("div", { class: "muted small" }, "No decision yet in this session")
        : h(
            "ul",
            { class: "save-list" },
            recent.map((op) => {
              const choice = op.label ? this.choices.get(op.label.value) : undefined;
              return h(
                "li",
                { class: `save state-${op.state}`, "data-frame": op.frameId, "data-state": op.state },
                h("span", { class: "swatch", style: { background: choice?.color ?? "transparent" } }),
                h("span", { class: "save-what" }, `#${op.frameId} ${choice?.label ?? op.label?.value ?? ""}${op.label?.rationale ? " (with rationale)" : ""}`),
                h("span", { class: "save-state" }, op.state === "resolved" ? (op.resolution === "server" ? "took server's" : "kept yours") : op.state),
                op.state === "failed" && op.retryable
                  ? h("button", { class: "small", tabindex: "-1", onclick: () => this.retry(op) }, "Retry")
                  : null,
                op.state === "failed" && op.error ? h("div", { class: "save-error small" }, op.error) : null,
              );
            }),
          ),
      failed > 0 ? h("div", { class: "small error" }, `${failed} not saved: Shift+R retries`) : null,
    );
  }

  private renderFooter(): void {
    const counts = this.counts.shown(this.decidedSet());
    const position = this.phase === "frame" || this.phase === "waiting" ? this.list.cursor + 1 : 0;
    mount(
      this.el.footer,
      h("button", { tabindex: "-1", onclick: () => this.dispatch({ kind: "prev" }), title: "Previous frame (←)" }, "← Prev"),
      h(
        "div",
        { class: "progress-wrap" },
        h(
          "div",
          {
            class: "review-progress progress-text small",
            "data-open": counts.open ?? "",
            "data-adjudicated": counts.adjudicated ?? "",
            "data-position": position,
          },
          counts.open === null ? "…" : `${counts.open} open · ${counts.adjudicated} adjudicated`,
          position > 0
            ? h("span", { class: "muted" }, ` · ${STATUS_NAMES[this.status].toLowerCase()}: frame ${position} of ${this.list.frames.length}${this.list.exhausted ? "" : "+"}`)
            : null,
        ),
      ),
      h("button", { tabindex: "-1", onclick: () => this.dispatch({ kind: "next" }), title: "Next frame (→)" }, "Next →"),
    );
  }

  private renderModal(): void {
    const conflict = this.saves.conflicts()[0];
    if (conflict) {
      mount(this.el.modal, this.renderConflict(conflict));
      return;
    }
    if (this.helpOpen) {
      mount(this.el.modal, this.renderHelp());
      return;
    }
    this.el.modal.replaceChildren();
  }

  private renderConflict(op: DecisionOp): HTMLElement {
    const server = op.server;
    return conflictModal({
      frameId: op.frameId,
      explanation:
        "This frame's adjudication was changed by someone else (or in another tab) after this page loaded it. Nothing was overwritten. Choose which to keep.",
      server: this.describeDecision(server),
      serverMeta: server ? `by ${server.adjudicatedBy} · ${versionText(server.version, server.updatedAt)}` : null,
      mine: this.describeDecision(op.label),
      count: this.saves.conflicts().length,
      keepMine: () => this.dispatch({ kind: "keepMine" }),
      takeServer: () => this.dispatch({ kind: "takeServer" }),
    });
  }

  private renderHelp(): HTMLElement {
    const groups = ["Decide", "Navigate", "Lists", "View", "Other"] as const;
    return helpModal(
      "A choice's key records it as the adjudicated label of the frame (with the rationale, if one was typed after Shift+N) and moves on. The annotators' own labels stay as they gave them.",
      groups.map((group) => [
        group,
        this.keymap.bindings.filter((binding) => binding.group === group).map((binding) => [binding.keys, binding.description]),
      ]),
      () => this.dispatch({ kind: "close" }),
    );
  }

  // --- Frame display -----------------------------------------------------------------------------

  /** Show the cursor's frame: at once when it is decoded already, else after loading it. */
  private async show(): Promise<void> {
    const frame = this.list.current();
    if (!frame) return;
    this.el.rationale.value = this.drafts.get(frame.id) ?? this.saves.displayOf(frame.id)?.rationale ?? "";
    const ready = this.prefetcher.ready(frame.id);
    this.phase = ready ? "frame" : "waiting";
    if (ready) this.place(frame, ready);
    this.renderSide();
    this.renderFooter();
    if (!ready) {
      this.renderStageNote();
      this.stage.hideStale(frame.id);
      let image: HTMLImageElement;
      try {
        image = await this.prefetcher.load(frame.id, frame.image_url);
      } catch {
        if (this.list.current() === frame) this.toaster.show(`Frame #${frame.id} could not be loaded.`, "error");
        return;
      }
      if (this.disposed || this.list.current() !== frame || this.phase !== "waiting") return;
      image.style.visibility = "";
      this.place(frame, image);
    } else {
      ready.style.visibility = "";
    }
    this.prefetcher.want(this.list.prefetchOrder(BEHIND, AHEAD));
    void this.refill();
  }

  private place(frame: QueueFrame, image: HTMLImageElement): void {
    this.stage.place(frame.id, image);
    this.phase = "frame";
    this.renderStageNote();
  }

  // --- The list ----------------------------------------------------------------------------------

  /** Take a page in: items by frame id (an item already held gets the fresh annotations), counts, and
   * the frames into the list. */
  private take(ticket: RefillTicket, page: ReviewQueuePage): void {
    for (const item of page.items) {
      const held = this.items.get(item.frame.id);
      this.items.set(item.frame.id, held ? { ...held, annotations: item.annotations, disagreement: item.disagreement, adjudication: item.adjudication } : item);
      this.saves.setKnown(item.frame.id, parseAdjudication(item.adjudication));
    }
    this.counts.apply(page);
    const fresh = page.items.map((item) => item.frame.id).filter((id) => !this.list.has(id));
    this.list.applyPage(ticket, asQueuePage(page));
    if (fresh.length > 0) void this.loadContext(fresh);
    this.renderHead();
    this.renderFooter();
  }

  private confirmedDecided(): Set<number> {
    const confirmed = new Set<number>();
    for (const frame of this.list.frames) if (this.saves.knownOf(frame.id)) confirmed.add(frame.id);
    return goneFromList(this.status, confirmed);
  }

  private async refill(): Promise<void> {
    if (!this.list.needsRefill()) return;
    const generation = this.generation;
    const list = this.list;
    const ticket = list.beginRefill(this.confirmedDecided());
    try {
      const page = await api.review(this.project.id, this.task.id, this.status, ticket.limit);
      if (this.disposed || generation !== this.generation) return;
      this.take(ticket, page);
    } catch (error) {
      list.failRefill();
      if (this.disposed || generation !== this.generation) return;
      if (error instanceof ApiError && error.status === 403) return this.notAllowed();
      if (error instanceof ApiError && error.status === 404) return this.notFound();
      this.toaster.show(`Could not load the next frames: ${error instanceof Error ? error.message : String(error)}`, "error");
    }
  }

  private async loadContext(ids: number[]): Promise<void> {
    try {
      const { frames } = await api.context(ids);
      for (const context of frames) this.contexts.set(context.frame, context);
      const current = this.current();
      if (current && ids.includes(current.id)) this.renderSide();
    } catch {
      // The context is for orientation only.
    }
  }

  /** Another list (open, adjudicated, all): a fresh list from its start; decisions on their way go on. */
  private async switchStatus(status: ReviewStatus): Promise<void> {
    if (status === this.status) return;
    this.status = status;
    this.generation += 1;
    this.list = new FrameList();
    this.counts = new ReviewCounts();
    this.phase = "loading";
    const url = new URL(location.href);
    if (status === "open") url.searchParams.delete("status");
    else url.searchParams.set("status", status);
    history.replaceState(null, "", url.pathname + url.search);
    this.root.querySelector<HTMLElement>(".workspace")?.setAttribute("data-status", status);
    this.renderAll();
    const generation = this.generation;
    await this.refill();
    if (this.disposed || generation !== this.generation) return;
    if (this.phase === "loading") await this.begin();
  }

  // --- Actions -----------------------------------------------------------------------------------

  private listen(): void {
    const onKey = (event: KeyboardEvent) => this.onKey(event);
    window.addEventListener("keydown", onKey);
    this.cleanups.push(() => window.removeEventListener("keydown", onKey));
    this.cleanups.push(this.saves.onChange((op) => this.onSave(op)));
    this.cleanups.push(this.stage.listen());
    this.el.rationale.addEventListener("input", () => {
      const frame = this.current();
      if (frame) this.drafts.set(frame.id, this.el.rationale.value);
    });
    this.el.rationale.addEventListener("keydown", (event) => this.onRationaleKey(event));
    const beforeUnload = (event: BeforeUnloadEvent) => {
      if (this.saves.pending() > 0 || this.saves.failed().some((op) => op.retryable) || this.saves.conflicts().length > 0) {
        event.preventDefault();
      }
    };
    window.addEventListener("beforeunload", beforeUnload);
    this.cleanups.push(() => window.removeEventListener("beforeunload", beforeUnload));
  }

  private onKey(event: KeyboardEvent): void {
    const target = event.target as HTMLElement | null;
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) {
      const input = target as HTMLInputElement;
      if (!(target.tagName === "INPUT" && (input.type === "range" || input.type === "checkbox"))) return;
    }
    const action = this.keymap.byKey.get(describeKey(event));
    if (!action) return;
    event.preventDefault();
    if (event.repeat && !repeatable(action)) return;
    this.dispatch(action);
  }

  /** In the rationale field: Enter saves (Shift+Enter is a new line), Esc goes back to the keys. */
  private onRationaleKey(event: KeyboardEvent): void {
    if (event.key === "Escape") {
      event.preventDefault();
      this.el.rationale.blur();
      return;
    }
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    this.el.rationale.blur();
    const frame = this.current();
    if (!frame) return;
    const decision = this.saves.displayOf(frame.id);
    const rationale = this.el.rationale.value.trim();
    if (!decision) {
      this.toaster.show("Rationale kept: a choice's key records the decision with it.");
      return;
    }
    if (this.saves.conflicts().length > 0 || !this.task.is_active) return;
    const next: Decision = { value: decision.value, rationale };
    if (!sameDecision(decision, next)) this.saves.submit(frame.id, next, null);
    this.drafts.delete(frame.id);
    this.toaster.show(`Rationale saved with the decision on frame #${frame.id}.`);
  }

  private dispatch(action: ReviewAction): void {
    const conflict = this.saves.conflicts()[0];
    if (conflict) {
      // A conflict is answered before anything else happens.
      if (action.kind === "keepMine") this.saves.keepMine(conflict);
      else if (action.kind === "takeServer") this.saves.takeServer(conflict);
      else if (action.kind !== "retry") {
        this.toaster.show("Resolve the conflict first: Shift+K keeps yours, Shift+T takes the server's.", "error");
        return;
      }
      if (action.kind !== "retry") {
        this.afterResolution(conflict);
        return;
      }
    }
    if (isViewAction(action)) {
      this.stage.handle(action);
      return;
    }
    switch (action.kind) {
      case "choice":
        return this.decide(action.value);
      case "next":
        return void this.next();
      case "prev":
        return this.prev();
      case "status":
        return void this.switchStatus(action.status);
      case "rationale":
        if (!this.current()) return;
        this.el.rationale.focus();
        this.el.rationale.setSelectionRange(this.el.rationale.value.length, this.el.rationale.value.length);
        return;
      case "retry":
        return this.retryAll();
      case "help":
        this.helpOpen = !this.helpOpen;
        return this.renderModal();
      case "close":
        this.helpOpen = false;
        return this.renderModal();
      case "keepMine":
      case "takeServer":
        return;
    }
  }

  private afterResolution(op: DecisionOp): void {
    // The field shows what the frame holds now (the server's rationale after taking it).
    if (this.current()?.id === op.frameId && !this.drafts.has(op.frameId)) {
      this.el.rationale.value = this.saves.displayOf(op.frameId)?.rationale ?? "";
    }
    this.renderAll();
  }

  private decide(value: string): void {
    const frame = this.current();
    // Never decide on a frame that is not on screen yet (a key pressed while it loads does nothing).
    if (!frame || this.phase !== "frame" || this.stage.imageFrame !== frame.id) return;
    if (!this.task.is_active) {
      this.toaster.show("This task is inactive: its adjudications cannot change.", "error");
      return;
    }
    if (this.saves.hasConflict(frame.id)) return;
    const decision: Decision = { value, rationale: this.el.rationale.value.trim() };
    if (!sameDecision(this.saves.displayOf(frame.id), decision)) this.saves.submit(frame.id, decision, null);
    this.drafts.delete(frame.id);
    void this.next();
  }

  private async next(): Promise<void> {
    if (this.phase === "done" || this.phase === "empty" || this.phase === "loading") return;
    if (this.list.next()) return this.show();
    const generation = this.generation;
    if (!this.list.exhausted) {
      this.phase = "loading";
      this.renderStageNote();
      await this.refill();
      if (generation !== this.generation) return;
      if (this.list.next()) return this.show();
    }
    if (this.list.exhausted) {
      this.phase = "done";
      this.renderAll();
    } else {
      // The refill failed (its toast says why): stay on the last frame.
      this.phase = "waiting";
      void this.show();
    }
  }

  private prev(): void {
    if (this.phase === "done") {
      void this.show();
      return;
    }
    if (this.phase === "empty" || this.phase === "loading") return;
    if (this.list.prev()) void this.show();
  }

  private retry(op: DecisionOp): void {
    if (!this.saves.retry(op)) this.toaster.show("Only the frame's latest decision can be retried.", "error");
  }

  private retryAll(): void {
    const count = this.saves.retryAll();
    this.toaster.show(count > 0 ? `Retrying ${count} decision(s).` : "Nothing to retry.");
  }

  private onSave(op: DecisionOp): void {
    if (this.disposed) return;
    if (op.state === "failed") this.toaster.show(`Frame #${op.frameId}: not saved. ${op.error ?? ""}`, "error");
    this.renderSide();
    this.renderFooter();
    if (op.state === "conflict" || op.state === "resolved") this.renderModal();
  }
}
