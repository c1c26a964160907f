// The labelling workspace: one project, one task, the frames of the user's work queue.
//
// Keyboard first: a choice's hotkey labels the frame with the current confidence and moves on; the
// save goes out in the background (saves.ts) while the next frame, decoded ahead (prefetch.ts), is
// already on screen. See keymap.ts for every key and the help overlay ("?") in the page.

import { ApiError, annotationTransport, api, type Choice, type FrameContext, type LabelTask, type Project } from "./api";
import { h, mount } from "./dom";
import { buildKeymap, CONFIDENCE_NAMES, describeKey, KeymapError, repeatable, type Action, type Keymap } from "./keymap";
import { perfInit, perfPainted, perfStart, type ClearPerf } from "./perf";
import { decodeImage, Prefetcher } from "./prefetch";
import { FrameList, type QueueFrame } from "./queue";
import { SaveManager, sameLabel, type Label, type SaveOp } from "./saves";
import { planUndo, UndoStack } from "./undo";
import {
  ADJUST_MAX,
  ADJUST_MIN,
  clampAdjust,
  cssFilter,
  cssTransform,
  FIT,
  NEUTRAL,
  panBy,
  scale,
  wheelFactor,
  ZOOM_STEP,
  zoomAt,
  type Adjust,
  type Size,
  type View,
} from "./viewport";

const AHEAD = 5;
const BEHIND = 2;
const CONFIDENCE_KEY = "clear.confidence";

export interface WorkspaceOptions {
  project: number;
  task: number;
  prefetch: boolean;
}

type Phase = "loading" | "frame" | "waiting" | "done" | "empty";

/** The help overlay's rows of one group; the five confidence keys share one row. */
function helpRows(keymap: Keymap, group: string): [string[], string][] {
  const rows: [string[], string][] = [];
  for (const binding of keymap.bindings) {
    if (binding.group !== group) continue;
    if (binding.action.kind === "confidence") {
      if (binding.action.level === 1) rows.push([["Shift+1…5"], "Confidence 1 (guess) … 5 (certain), kept for the next frames"]);
      continue;
    }
    rows.push([binding.keys, binding.description]);
  }
  return rows;
}

const KEY_LABELS: Record<string, string> = { ArrowRight: "→", ArrowLeft: "←", ArrowUp: "↑", ArrowDown: "↓", Escape: "Esc" };

/** "Shift+ArrowLeft" -> "Shift+←", "Shift+r" -> "Shift+R". */
function keyLabel(key: string): string {
  return key
    .split("+")
    .map((part, index, parts) => {
      const label = KEY_LABELS[part] ?? part;
      return index === parts.length - 1 && parts.length > 1 && /^[a-z]$/.test(label) ? label.toUpperCase() : label;
    })
    .join("+");
}

export class Workspace {
  private readonly list = new FrameList();
  private readonly undo = new UndoStack();
  private readonly saves: SaveManager;
  private readonly prefetcher: Prefetcher<HTMLImageElement> | null;
  private readonly contexts = new Map<number, FrameContext>();
  private readonly perf: ClearPerf;
  private keymap!: Keymap;
  private task!: LabelTask;
  private project!: Project;
  private tasks: LabelTask[] = [];
  private choices = new Map<string, Choice>();
  private confidence = 3;
  private view: View = FIT;
  private adjust: Adjust = NEUTRAL;
  private overlayVisible = true;
  private overlayOpacity = 0.5;
  private helpOpen = false;
  private phase: Phase = "loading";
  private shownAt = performance.now();
  private image: HTMLImageElement | null = null;
  private imageFrame: number | null = null;
  private drag: { x: number; y: number; id: number } | null = null;
  private messageTimer = 0;
  private disposed = false;
  private readonly cleanups: (() => void)[] = [];

  // Elements that are updated in place (the frame must never be rebuilt on a keypress).
  private readonly el = {
    stage: h("div", { class: "stage", tabindex: "-1", "aria-label": "Frame" }),
    layer: h("div", { class: "layer" }),
    overlay: h("canvas", { class: "cam-overlay", "aria-hidden": "true" }),
    stageNote: h("div", { class: "stage-note", role: "status" }),
    side: h("aside", { class: "side" }),
    footer: h("footer", { class: "ws-footer" }),
    modal: h("div", { class: "modal-root" }),
    toast: h("div", { class: "toast", role: "status", "aria-live": "polite" }),
  };

  constructor(
    private readonly root: HTMLElement,
    private readonly options: WorkspaceOptions,
  ) {
    this.saves = new SaveManager({ transport: annotationTransport(options.task) });
    this.prefetcher = options.prefetch ? new Prefetcher(decodeImage) : null;
    this.perf = perfInit(options.prefetch);
    const stored = Number(localStorage.getItem(CONFIDENCE_KEY));
    if (stored >= 1 && stored <= 5) this.confidence = stored;
  }

  /** Load project, task and the first frames; shows a not-found state for another project's ids. */
  async start(): Promise<void> {
    mount(this.root, h("div", { class: "center muted" }, "Loading workspace…"));
    try {
      [this.project, this.tasks] = await Promise.all([api.project(this.options.project), api.tasks(this.options.project)]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return this.notFound();
      throw error;
    }
    const task = this.tasks.find((candidate) => candidate.id === this.options.task && candidate.is_active);
    if (!task) return this.notFound();
    this.task = task;
    const active = task.choices.filter((choice) => choice.is_active).sort((a, b) => a.order - b.order || a.id - b.id);
    this.choices = new Map(active.map((choice) => [choice.value, choice]));
    try {
      this.keymap = buildKeymap(active);
    } catch (error) {
      if (error instanceof KeymapError) {
        mount(this.root, h("div", { class: "center error", role: "alert" }, error.message));
        return;
      }
      throw error;
    }
    this.layout();
    this.listen();
    await this.refill();
    if (this.disposed) return;
    if (this.list.frames.length === 0) {
      this.phase = "empty";
      this.renderAll();
      return;
    }
    await this.show();
  }

  dispose(): void {
    this.disposed = true;
    for (const cleanup of this.cleanups) cleanup();
    window.clearTimeout(this.messageTimer);
  }

  private notFound(): void {
    document.title = "Not found · CLEAR";
    mount(
      this.root,
      h(
        "div",
        { class: "center not-found", "data-state": "not-found", role: "alert" },
        h("h1", {}, "Not found"),
        h("p", {}, "This project or task does not exist, or you are not a member of it."),
        h("a", { href: "/", "data-route": "" }, "Back to your projects"),
      ),
    );
  }

  // --- Layout and rendering ----------------------------------------------------------------------

  private layout(): void {
    document.title = `${this.task.name} · ${this.project.name} · CLEAR`;
    this.el.stage.replaceChildren(this.el.layer, this.el.stageNote);
    this.el.layer.replaceChildren(this.el.overlay);
    mount(
      this.root,
      h(
        "div",
        { class: "workspace", "data-task": this.task.id },
        h("main", { class: "stage-wrap" }, this.el.stage),
        this.el.side,
        this.el.footer,
        this.el.modal,
        this.el.toast,
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
    const notes: Record<Phase, string> = {
      loading: "Loading frames…",
      waiting: "Loading the frame…",
      frame: "",
      done: "All frames of this task are labelled. ← goes back to the last one.",
      empty: "No frames to label for this task.",
    };
    const text = notes[this.phase];
    this.el.stageNote.textContent = text;
    this.el.stageNote.hidden = text === "";
    this.el.stage.dataset.phase = this.phase;
    this.el.layer.hidden = this.phase === "done" || this.phase === "empty";
  }

  private renderSide(): void {
    const frame = this.current();
    const label = frame ? this.saves.displayOf(frame.id) : null;
    const latest = frame ? this.saves.latestFor(frame.id) : undefined;
    const context = frame ? this.contexts.get(frame.id) : undefined;
    const taskPicker = h(
      "select",
      {
        class: "task-picker",
        "aria-label": "Task",
        onchange: (event: Event) => {
          const id = (event.target as HTMLSelectElement).value;
          location.assign(`/label/${this.project.id}/${id}${location.search}`);
        },
      },
      this.tasks
        .filter((task) => task.is_active)
        .map((task) => h("option", { value: task.id, selected: task.id === this.task.id }, task.name)),
    );
    mount(
      this.el.side,
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-title" }, h("a", { href: `/projects/${this.project.id}`, "data-route": "" }, this.project.name)),
        taskPicker,
        this.task.description ? h("p", { class: "muted small" }, this.task.description) : null,
      ),
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-title" }, "Label"),
        h(
          "ul",
          { class: "choices" },
          [...this.choices.values()].map((choice) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  class: `choice${label?.value === choice.value ? " chosen" : ""}`,
                  "data-value": choice.value,
                  tabindex: "-1",
                  onclick: () => this.dispatch({ kind: "choice", value: choice.value }),
                },
                h("span", { class: "swatch", style: { background: choice.color } }),
                h("span", { class: "choice-label" }, choice.label),
                choice.hotkey ? h("kbd", {}, choice.hotkey) : null,
              ),
            ),
          ),
        ),
        h("div", { class: "panel-subtitle" }, "Confidence ", h("span", { class: "muted small" }, "(Shift+1…5)")),
        h(
          "div",
          { class: "confidence", role: "radiogroup", "aria-label": "Confidence" },
          ([1, 2, 3, 4, 5] as const).map((level) =>
            h(
              "button",
              {
                class: `conf${this.confidence === level ? " on" : ""}`,
                role: "radio",
                "aria-checked": String(this.confidence === level),
                title: `${level}: ${CONFIDENCE_NAMES[level]} (Shift+${level})`,
                tabindex: "-1",
                onclick: () => this.dispatch({ kind: "confidence", level }),
              },
              String(level),
            ),
          ),
        ),
        h("div", { class: "muted small" }, CONFIDENCE_NAMES[this.confidence as 1 | 2 | 3 | 4 | 5]),
        this.renderCurrentLabel(label, latest),
      ),
      h(
        "section",
        { class: "panel context" },
        h("div", { class: "panel-title" }, "Examination"),
        frame ? this.renderContext(frame, context) : h("div", { class: "muted small" }, "—"),
      ),
      h(
        "section",
        { class: "panel model" },
        h("div", { class: "panel-title" }, "Model"),
        h("div", { class: "model-prediction muted small", "data-empty": "true" }, "No model prediction for this frame"),
        h(
          "label",
          { class: "slider" },
          h("span", {}, "Overlay opacity"),
          h("input", {
            type: "range",
            min: "0",
            max: "1",
            step: "0.05",
            value: String(this.overlayOpacity),
            tabindex: "-1",
            oninput: (event: Event) => {
              this.overlayOpacity = Number((event.target as HTMLInputElement).value);
              this.applyOverlay();
            },
            onchange: (event: Event) => (event.target as HTMLInputElement).blur(),
          }),
        ),
        h(
          "label",
          { class: "check" },
          h("input", {
            type: "checkbox",
            checked: this.overlayVisible,
            tabindex: "-1",
            onchange: () => this.dispatch({ kind: "overlay" }),
          }),
          " Show overlay (Shift+M)",
        ),
      ),
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-title" }, "View ", h("span", { class: "muted small zoom-readout" }, `${Math.round(this.view.zoom * 100)} %`)),
        this.slider("Brightness", "brightness", "[ ]"),
        this.slider("Contrast", "contrast", "{ }"),
        h(
          "div",
          { class: "row" },
          h("button", { tabindex: "-1", onclick: () => this.dispatch({ kind: "zoomOut" }), title: "Zoom out (-)" }, "−"),
          h("button", { tabindex: "-1", onclick: () => this.dispatch({ kind: "zoomIn" }), title: "Zoom in (+)" }, "+"),
          h("button", { tabindex: "-1", onclick: () => this.dispatch({ kind: "resetView" }), title: "Fit (0)" }, "Fit"),
          h("button", { tabindex: "-1", onclick: () => this.dispatch({ kind: "resetAdjust" }), title: "Reset brightness and contrast (\\)" }, "Reset"),
        ),
      ),
      this.renderSaves(),
      h(
        "section",
        { class: "panel" },
        h("button", { class: "link", tabindex: "-1", onclick: () => this.dispatch({ kind: "help" }) }, "Keyboard shortcuts (?)"),
      ),
    );
  }

  private renderCurrentLabel(label: Label | null, latest: SaveOp | undefined): HTMLElement {
    if (!label) {
      return h("div", { class: "current-label muted", "data-state": "none" }, "Not labelled yet");
    }
    const choice = this.choices.get(label.value);
    const state = latest?.state ?? "saved";
    const stateText: Record<string, string> = {
      saving: "saving…",
      saved: "saved",
      failed: "not saved",
      conflict: "conflict",
      resolved: "saved",
      superseded: "saved",
    };
    return h(
      "div",
      { class: `current-label state-${state}`, "data-state": state },
      h("span", { class: "swatch", style: { background: choice?.color ?? "#888" } }),
      ` ${choice?.label ?? label.value} · confidence ${label.confidence} · `,
      h("span", { class: "save-state" }, stateText[state] ?? state),
    );
  }

  private renderContext(frame: QueueFrame, context: FrameContext | undefined): HTMLElement {
    const rows: [string, string][] = [
      ["Patient", context?.patient_pseudonym ?? "…"],
      ["Examination", context?.examination_code ?? "…"],
      ["Site", frame.examination_site || "—"],
      ["Device", frame.examination_device || "—"],
      ["Video", context ? (context.video_name ?? "— (still images)") : "…"],
      [
        "Index",
        frame.index_in_video === null
          ? "—"
          : `${frame.index_in_video}${frame.time_s === null ? "" : ` (${frame.time_s.toFixed(2)} s)`}`,
      ],
      ["Frame", `#${frame.id} · ${frame.width}×${frame.height}`],
    ];
    return h(
      "dl",
      { class: "context-list" },
      rows.map(([term, value]) => [h("dt", {}, term), h("dd", { "data-field": term.toLowerCase() }, value)]),
    );
  }

  private renderSaves(): HTMLElement {
    const recent = this.saves.ops.filter((op) => op.state !== "superseded").slice(-8).reverse();
    const failed = this.saves.failed().filter((op) => op.retryable).length;
    return h(
      "section",
      { class: "panel saves" },
      h(
        "div",
        { class: "panel-title" },
        "Saves ",
        this.saves.pending() > 0 ? h("span", { class: "muted small" }, `${this.saves.pending()} on the way`) : null,
      ),
      recent.length === 0
        ? h("div", { class: "muted small" }, "Nothing labelled yet in this session")
        : h(
            "ul",
            { class: "save-list" },
            recent.map((op) => {
              const choice = op.label ? this.choices.get(op.label.value) : undefined;
              const what = op.label ? `${choice?.label ?? op.label.value} (${op.label.confidence})` : "label removed";
              return h(
                "li",
                { class: `save state-${op.state}`, "data-frame": op.frameId, "data-state": op.state },
                h("span", { class: "swatch", style: { background: choice?.color ?? "transparent" } }),
                h("span", { class: "save-what" }, `#${op.frameId} ${what}${op.purpose === "undo" ? " (undo)" : ""}`),
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

  private slider(name: string, field: keyof Adjust, keys: string): HTMLElement {
    return h(
      "label",
      { class: "slider" },
      h("span", {}, `${name} `, h("kbd", {}, keys)),
      h("input", {
        type: "range",
        min: String(ADJUST_MIN),
        max: String(ADJUST_MAX),
        step: "0.05",
        value: String(this.adjust[field]),
        "data-adjust": field,
        tabindex: "-1",
        oninput: (event: Event) => {
          this.adjust = { ...this.adjust, [field]: clampAdjust(Number((event.target as HTMLInputElement).value)) };
          this.applyView();
        },
        onchange: (event: Event) => (event.target as HTMLInputElement).blur(),
      }),
    );
  }

  private renderFooter(): void {
    const labelled = this.labelledSet();
    const remaining = this.list.remaining(labelled);
    const total = this.list.total;
    const done = total === null || remaining === null ? 0 : total - remaining;
    const percent = total ? Math.round((done / total) * 1000) / 10 : 0;
    const position = this.list.cursor + 1;
    mount(
      this.el.footer,
      h(
        "button",
        { tabindex: "-1", onclick: () => this.dispatch({ kind: "prev" }), title: "Previous frame (←)" },
        "← Prev",
      ),
      h(
        "div",
        { class: "progress-wrap" },
        h(
          "div",
          {
            class: "progress",
            role: "progressbar",
            "aria-valuemin": "0",
            "aria-valuemax": String(total ?? 0),
            "aria-valuenow": String(done),
            "data-remaining": remaining ?? "",
            "data-total": total ?? "",
          },
          h("div", { class: "progress-fill", style: { width: `${percent}%` } }),
        ),
        h(
          "div",
          { class: "progress-text small" },
          total === null ? "…" : `${remaining} of ${total} remaining · ${done} labelled`,
          position > 0 ? h("span", { class: "muted" }, ` · frame ${position} of this session's ${this.list.frames.length}`) : null,
        ),
      ),
      h(
        "button",
        { tabindex: "-1", onclick: () => this.dispatch({ kind: "undo" }), title: "Undo the last label (Ctrl+Z or Backspace)", disabled: this.undo.size === 0 },
        "Undo",
      ),
      h(
        "button",
        { tabindex: "-1", onclick: () => this.dispatch({ kind: "next" }), title: "Next frame (→)" },
        "Next →",
      ),
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

  private describeLabel(label: Label | null): HTMLElement {
    if (!label) return h("span", { class: "muted" }, "no label");
    const choice = this.choices.get(label.value);
    return h(
      "span",
      {},
      h("span", { class: "swatch", style: { background: choice?.color ?? "#888" } }),
      ` ${choice?.label ?? label.value} · confidence ${label.confidence}`,
    );
  }

  private renderConflict(op: SaveOp): HTMLElement {
    const server = op.server;
    const count = this.saves.conflicts().length;
    return h(
      "div",
      { class: "modal-backdrop" },
      h(
        "div",
        { class: "modal conflict", role: "alertdialog", "aria-labelledby": "conflict-title", "data-frame": op.frameId },
        h("h2", { id: "conflict-title" }, `Conflict on frame #${op.frameId}`),
        h(
          "p",
          {},
          "This label was changed elsewhere (another tab, another device) after this page loaded it. Nothing was overwritten. Choose which to keep.",
        ),
        h(
          "div",
          { class: "conflict-sides" },
          h(
            "div",
            { class: "side-box", "data-side": "server" },
            h("div", { class: "panel-title" }, "On the server"),
            h("div", { class: "conflict-value" }, this.describeLabel(server)),
            server ? h("div", { class: "muted small" }, `version ${server.version}${server.updatedAt ? ` · ${new Date(server.updatedAt).toLocaleString()}` : ""}`) : null,
          ),
          h(
            "div",
            { class: "side-box", "data-side": "mine" },
            h("div", { class: "panel-title" }, "Yours"),
            h("div", { class: "conflict-value" }, this.describeLabel(op.label)),
          ),
        ),
        h(
          "div",
          { class: "row end" },
          h("button", { class: "keep-mine primary", onclick: () => this.dispatch({ kind: "keepMine" }) }, "Keep mine ", h("kbd", {}, "Shift+K")),
          h("button", { class: "take-server", onclick: () => this.dispatch({ kind: "takeServer" }) }, "Take the server's ", h("kbd", {}, "Shift+T")),
        ),
        count > 1 ? h("p", { class: "muted small" }, `${count - 1} more conflict(s) after this one.`) : null,
      ),
    );
  }

  private renderHelp(): HTMLElement {
    const groups = ["Label", "Navigate", "View", "Other"] as const;
    return h(
      "div",
      { class: "modal-backdrop", onclick: () => this.dispatch({ kind: "close" }) },
      h(
        "div",
        { class: "modal help", role: "dialog", "aria-label": "Keyboard shortcuts", onclick: (event: Event) => event.stopPropagation() },
        h("h2", {}, "Keyboard shortcuts"),
        h(
          "p",
          { class: "muted small" },
          "A choice's key labels the frame with the current confidence and moves on. Confidence stays as set (Shift+1…5) for the next frames; on a labelled frame it also changes that label.",
        ),
        h(
          "div",
          { class: "help-grid" },
          groups.map((group) =>
            h(
              "section",
              {},
              h("h3", {}, group),
              h(
                "table",
                {},
                helpRows(this.keymap, group).map(([keys, description]) =>
                  h("tr", {}, h("td", {}, keys.map((key) => h("kbd", {}, keyLabel(key)))), h("td", {}, description)),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  private toast(text: string, kind: "info" | "error" = "info"): void {
    this.el.toast.textContent = text;
    this.el.toast.className = `toast show ${kind}`;
    window.clearTimeout(this.messageTimer);
    this.messageTimer = window.setTimeout(() => {
      this.el.toast.className = "toast";
    }, 4000);
  }

  // --- Frame display -----------------------------------------------------------------------------

  private stageSize(): Size {
    return { width: this.el.stage.clientWidth, height: this.el.stage.clientHeight };
  }

  private imageSize(): Size {
    const frame = this.list.current();
    if (this.image) return { width: this.image.naturalWidth, height: this.image.naturalHeight };
    return { width: frame?.width ?? 1, height: frame?.height ?? 1 };
  }

  private applyView(): void {
    const stage = this.stageSize();
    const image = this.imageSize();
    this.el.layer.style.width = `${image.width}px`;
    this.el.layer.style.height = `${image.height}px`;
    this.el.layer.style.transform = cssTransform(this.view, stage, image);
    // Far in, show the pixels as they are rather than smoothed over.
    this.el.layer.classList.toggle("pixelated", scale(this.view, stage, image) >= 3);
    if (this.image) this.image.style.filter = cssFilter(this.adjust);
    const readout = this.el.side.querySelector(".zoom-readout");
    if (readout) readout.textContent = `${Math.round(this.view.zoom * 100)} %`;
    for (const input of this.el.side.querySelectorAll<HTMLInputElement>("input[data-adjust]")) {
      input.value = String(this.adjust[input.dataset.adjust as keyof Adjust]);
    }
  }

  private applyOverlay(): void {
    this.el.overlay.style.opacity = String(this.overlayOpacity);
    this.el.overlay.hidden = !this.overlayVisible;
  }

  private place(frame: QueueFrame, image: HTMLImageElement, prefetched: boolean): void {
    image.className = "frame-image";
    image.alt = `Frame ${frame.id}`;
    image.draggable = false;
    image.dataset.frame = String(frame.id);
    if (this.image !== image) {
      if (this.image) this.image.remove();
      this.el.layer.insertBefore(image, this.el.overlay);
      this.image = image;
    }
    this.imageFrame = frame.id;
    // The model slot stays empty until the inference issue delivers predictions and CAMs.
    this.el.overlay.width = image.naturalWidth;
    this.el.overlay.height = image.naturalHeight;
    this.applyOverlay();
    this.phase = "frame";
    this.applyView();
    this.renderStageNote();
    this.shownAt = performance.now();
    perfPainted(this.perf, frame.id, prefetched);
  }

  /** Show the cursor's frame: at once when it is decoded already, else after loading it. */
  private async show(): Promise<void> {
    const frame = this.list.current();
    if (!frame) return;
    const ready = this.prefetcher?.ready(frame.id);
    this.phase = ready ? "frame" : "waiting";
    if (ready) this.place(frame, ready, true);
    this.renderSide();
    this.renderFooter();
    if (!ready) {
      this.renderStageNote();
      if (this.image && this.imageFrame !== frame.id) this.image.style.visibility = "hidden";
      let image: HTMLImageElement;
      try {
        image = this.prefetcher ? await this.prefetcher.load(frame.id, frame.image_url) : await decodeImage(frame.image_url);
      } catch {
        if (this.list.current() === frame) this.toast(`Frame #${frame.id} could not be loaded.`, "error");
        return;
      }
      if (this.disposed || this.list.current() !== frame || (this.phase as Phase) === "done") return;
      image.style.visibility = "";
      this.place(frame, image, false);
    } else {
      ready.style.visibility = "";
    }
    this.updatePrefetch();
    void this.refill();
  }

  private updatePrefetch(): void {
    if (!this.prefetcher) return;
    const window = this.list.window(BEHIND, AHEAD);
    // The current frame first, then the ones ahead in order, then the ones behind.
    const cursor = this.list.cursor;
    const order = [...window].sort((a, b) => {
      const da = this.list.indexOf(a.id) - cursor;
      const db = this.list.indexOf(b.id) - cursor;
      return (da < 0 ? 100 - da : da) - (db < 0 ? 100 - db : db);
    });
    this.prefetcher.want(order);
  }

  // --- Queue -------------------------------------------------------------------------------------

  private confirmedSet(): Set<number> {
    const confirmed = new Set<number>();
    for (const frame of this.list.frames) if (this.saves.knownOf(frame.id)) confirmed.add(frame.id);
    return confirmed;
  }

  private labelledSet(): Set<number> {
    const labelled = new Set<number>();
    for (const frame of this.list.frames) if (this.saves.displayOf(frame.id)) labelled.add(frame.id);
    return labelled;
  }

  private async refill(): Promise<void> {
    if (!this.list.needsRefill()) return;
    const ticket = this.list.beginRefill(this.confirmedSet());
    try {
      const page = await api.queue(this.project.id, this.task.id, ticket.limit);
      if (this.disposed) return;
      const fresh = page.frames.filter((frame) => !this.list.has(frame.id));
      for (const frame of fresh) this.saves.setKnown(frame.id, null);
      this.list.applyPage(ticket, page);
      this.renderFooter();
      this.updatePrefetch();
      if (fresh.length > 0) void this.loadContext(fresh.map((frame) => frame.id));
    } catch (error) {
      this.list.failRefill();
      if (error instanceof ApiError && error.status === 404) {
        this.notFound();
        return;
      }
      this.toast(`Could not load the next frames: ${error instanceof Error ? error.message : String(error)}`, "error");
    }
  }

  private async loadContext(ids: number[]): Promise<void> {
    try {
      const { frames } = await api.context(ids);
      for (const context of frames) this.contexts.set(context.frame, context);
      const current = this.current();
      if (current && ids.includes(current.id)) this.renderSide();
    } catch {
      // The context is for orientation only; the frame stays labellable without it.
    }
  }

  // --- Actions -----------------------------------------------------------------------------------

  private listen(): void {
    const onKey = (event: KeyboardEvent) => this.onKey(event);
    window.addEventListener("keydown", onKey);
    this.cleanups.push(() => window.removeEventListener("keydown", onKey));
    const unsubscribe = this.saves.onChange((op) => this.onSave(op));
    this.cleanups.push(unsubscribe);
    const stage = this.el.stage;
    stage.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const rect = stage.getBoundingClientRect();
        this.view = zoomAt(this.view, this.stageSize(), this.imageSize(), wheelFactor(event.deltaY, event.deltaMode), event.clientX - rect.left, event.clientY - rect.top);
        this.applyView();
      },
      { passive: false },
    );
    stage.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      this.drag = { x: event.clientX, y: event.clientY, id: event.pointerId };
      stage.setPointerCapture(event.pointerId);
      stage.classList.add("dragging");
    });
    stage.addEventListener("pointermove", (event) => {
      if (!this.drag || this.drag.id !== event.pointerId) return;
      const dx = event.clientX - this.drag.x;
      const dy = event.clientY - this.drag.y;
      this.drag = { x: event.clientX, y: event.clientY, id: event.pointerId };
      this.view = panBy(this.view, this.stageSize(), this.imageSize(), dx, dy);
      this.applyView();
    });
    const endDrag = (event: PointerEvent) => {
      if (this.drag?.id !== event.pointerId) return;
      this.drag = null;
      stage.classList.remove("dragging");
    };
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);
    stage.addEventListener("dblclick", () => this.dispatch({ kind: "resetView" }));
    const resize = new ResizeObserver(() => this.applyView());
    resize.observe(stage);
    this.cleanups.push(() => resize.disconnect());
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
    if (action.kind === "next" || action.kind === "choice") perfStart(this.perf);
    this.dispatch(action);
  }

  private dispatch(action: Action): void {
    const conflict = this.saves.conflicts()[0];
    if (conflict) {
      // A conflict is answered before anything else happens.
      if (action.kind === "keepMine") this.saves.keepMine(conflict);
      else if (action.kind === "takeServer") this.saves.takeServer(conflict);
      else if (action.kind !== "retry") {
        this.perf.pending = null;
        this.toast("Resolve the conflict first: Shift+K keeps yours, Shift+T takes the server's.", "error");
        return;
      }
      if (action.kind !== "retry") {
        this.renderAll();
        return;
      }
    }
    switch (action.kind) {
      case "choice":
        return this.label(action.value);
      case "confidence":
        return this.setConfidence(action.level);
      case "next":
        return void this.next();
      case "prev":
        return this.prev();
      case "undo":
        return void this.undoLast();
      case "retry":
        return this.retryAll();
      case "zoomIn":
      case "zoomOut": {
        const stage = this.stageSize();
        const factor = action.kind === "zoomIn" ? ZOOM_STEP : 1 / ZOOM_STEP;
        this.view = zoomAt(this.view, stage, this.imageSize(), factor, stage.width / 2, stage.height / 2);
        return this.applyView();
      }
      case "resetView":
        this.view = FIT;
        return this.applyView();
      case "pan":
        this.view = panBy(this.view, this.stageSize(), this.imageSize(), action.dx, action.dy);
        return this.applyView();
      case "brightness":
        this.adjust = { ...this.adjust, brightness: clampAdjust(this.adjust.brightness + action.delta) };
        return this.applyView();
      case "contrast":
        this.adjust = { ...this.adjust, contrast: clampAdjust(this.adjust.contrast + action.delta) };
        return this.applyView();
      case "resetAdjust":
        this.adjust = NEUTRAL;
        return this.applyView();
      case "overlay":
        this.overlayVisible = !this.overlayVisible;
        this.applyOverlay();
        return this.renderSide();
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

  private label(value: string): void {
    const frame = this.current();
    // Never label a frame that is not on screen yet (a key pressed while it loads does nothing).
    if (!frame || this.phase !== "frame" || this.imageFrame !== frame.id) {
      this.perf.pending = null;
      return;
    }
    if (this.saves.hasConflict(frame.id)) return;
    const before = this.saves.displayOf(frame.id);
    const label: Label = { value, confidence: this.confidence };
    if (!sameLabel(before, label)) {
      this.undo.push({ frameId: frame.id, before, after: label });
      this.saves.submit(frame.id, label, Math.round(performance.now() - this.shownAt));
    }
    void this.next();
  }

  private setConfidence(level: 1 | 2 | 3 | 4 | 5): void {
    this.confidence = level;
    localStorage.setItem(CONFIDENCE_KEY, String(level));
    const frame = this.current();
    const label = frame ? this.saves.displayOf(frame.id) : null;
    if (frame && label && label.confidence !== level) {
      const after = { value: label.value, confidence: level };
      this.undo.push({ frameId: frame.id, before: label, after });
      this.saves.submit(frame.id, after, Math.round(performance.now() - this.shownAt));
    }
    this.renderSide();
  }

  private async next(): Promise<void> {
    if (this.phase === "done" || this.phase === "empty") {
      this.perf.pending = null;
      return;
    }
    if (this.list.next()) return this.show();
    if (!this.list.exhausted) {
      this.phase = "loading";
      this.renderStageNote();
      await this.refill();
      if (this.list.next()) return this.show();
    }
    if (this.list.exhausted) {
      this.phase = "done";
      this.perf.pending = null;
      this.renderAll();
    }
  }

  private prev(): void {
    if (this.phase === "done") {
      this.phase = "frame";
      void this.show();
      return;
    }
    if (this.list.prev()) void this.show();
  }

  private async undoLast(): Promise<void> {
    const entry = this.undo.pop();
    if (!entry) {
      this.toast("Nothing to undo.");
      return;
    }
    if (this.list.goTo(entry.frameId)) {
      this.phase = "frame";
      void this.show();
    }
    await this.saves.settled(entry.frameId);
    if (this.saves.hasConflict(entry.frameId)) {
      this.undo.push(entry);
      this.renderAll();
      return;
    }
    const plan = planUndo(entry, this.saves.knownOf(entry.frameId) ?? null);
    if (plan.kind === "put") this.saves.submit(entry.frameId, plan.label, null, "undo");
    else if (plan.kind === "delete") this.saves.remove(entry.frameId, "undo");
    this.toast(`Undone on frame #${entry.frameId}.`);
    this.renderAll();
  }

  private retry(op: SaveOp): void {
    if (!this.saves.retry(op)) this.toast("Only the frame's latest label can be retried.", "error");
  }

  private retryAll(): void {
    const count = this.saves.retryAll();
    this.toast(count > 0 ? `Retrying ${count} save(s).` : "Nothing to retry.");
  }

  private onSave(op: SaveOp): void {
    if (this.disposed) return;
    if (op.state === "failed") {
      this.toast(`Frame #${op.frameId}: not saved. ${op.error ?? ""}`, "error");
    }
    this.renderSide();
    this.renderFooter();
    if (op.state === "conflict" || op.state === "resolved") this.renderModal();
  }
}
