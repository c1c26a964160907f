// The labelling workspace: one project, one task, the frames of the user's work queue.
//
// Keyboard first: a choice's hotkey labels the frame with the current confidence and moves on; the
// save goes out in the background (saves.ts) while the next frame, decoded ahead (prefetch.ts), is
// already on screen. See keymap.ts for every key and the help overlay ("?") in the page.

import { AI_HIDDEN, clampOpacity, ExposureTracker, type AiVisibility, type Prediction } from "./ai";
import {
  CamCache,
  CamCanvas,
  camOnNewFrame,
  opacitySlider,
  predictionView,
  setCamOnNewFrame,
  storedOpacity,
  storeOpacity,
  syncOpacitySlider,
  type SchemaLookup,
} from "./aiview";
import { ApiError, annotationTransport, api, get, type Choice, type FrameContext, type LabelTask, type Project } from "./api";
import { h, mount } from "./dom";
import { buildKeymap, CONFIDENCE_NAMES, describeKey, KeymapError, repeatable, type Action, type Keymap } from "./keymap";
import { conflictModal, contextList, helpModal, pageState, Toast, versionText } from "./panels";
import { perfInit, perfPainted, perfStart, type ClearPerf } from "./perf";
import { decodeImage, Prefetcher } from "./prefetch";
import { FrameList, queuePath, type QueueFrame, type QueuePage } from "./queue";
import { SaveManager, sameLabel, type Label, type SaveOp } from "./saves";
import { FrameStage, isViewAction } from "./stage";
import { planUndo, UndoStack } from "./undo";

const AHEAD = 5;
const BEHIND = 2;
const CONFIDENCE_KEY = "clear.confidence";

/** Model output of one frame, from the label context plus what was predicted on demand. */
interface FrameAi {
  visibility: AiVisibility;
  predictions: Prediction[];
  /** Tasks with an active model in the project. */
  activeTasks: string[];
  /** Tasks being predicted on demand now. */
  pending: Set<string>;
  /** Tasks whose on-demand prediction was refused, with the reason. */
  failed: Map<string, string>;
}

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
  private helpOpen = false;
  // Model output (see ai.ts, aiview.ts). `camShown` is the toggle for the frame on screen; every new
  // frame starts from the user's preference (hidden unless they chose otherwise).
  private readonly ai = new Map<number, FrameAi>();
  private readonly exposure = new ExposureTracker();
  private readonly cams = new CamCache();
  private readonly cam = new CamCanvas(storedOpacity());
  private camOpacity = storedOpacity();
  private camShown = camOnNewFrame();
  /** The frame and CAM URL the canvas is (being) given. */
  private camFor: { frame: number; url: string } | null = null;
  /** On-demand predictions asked for, as "frame:task" (once each per page, unless the network failed). */
  private readonly demanded = new Set<string>();
  private phase: Phase = "loading";
  private shownAt = performance.now();
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

  // Elements that are updated in place (the frame must never be rebuilt on a keypress).
  private readonly el = {
    side: h("aside", { class: "side" }),
    model: h("section", { class: "panel model" }),
    footer: h("footer", { class: "ws-footer" }),
    modal: h("div", { class: "modal-root" }),
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
    this.exposure.camOnScreen(null);
    for (const cleanup of this.cleanups) cleanup();
    this.toaster.dispose();
  }

  private notFound(): void {
    mount(this.root, pageState("not-found", "Not found", "This project or task does not exist, or you are not a member of it."));
  }

  // --- Layout and rendering ----------------------------------------------------------------------

  private layout(): void {
    document.title = `${this.task.name} · ${this.project.name} · CLEAR`;
    this.stage.layer.replaceChildren(this.cam.element);
    this.stage.controls = this.el.side;
    mount(
      this.root,
      h(
        "div",
        { class: "workspace", "data-task": this.task.id },
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
    const notes: Record<Phase, string> = {
      loading: "Loading frames…",
      waiting: "Loading the frame…",
      frame: "",
      done: "All frames of this task are labelled. ← goes back to the last one.",
      empty: "No frames to label for this task.",
    };
    const text = notes[this.phase];
    this.stage.note.textContent = text;
    this.stage.note.hidden = text === "";
    this.stage.element.dataset.phase = this.phase;
    this.stage.layer.hidden = this.phase === "done" || this.phase === "empty";
    // While another frame loads (or none is left), no CAM stays over the stage.
    if (this.phase !== "frame") this.cam.setVisible(false);
    this.syncExposure();
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
        frame ? contextList(frame, context) : h("div", { class: "muted small" }, "—"),
      ),
      this.renderModel(),
      this.stage.viewPanel(),
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
    return conflictModal({
      frameId: op.frameId,
      explanation:
        "This label was changed elsewhere (another tab, another device) after this page loaded it. Nothing was overwritten. Choose which to keep.",
      server: this.describeLabel(server),
      serverMeta: server ? versionText(server.version, server.updatedAt) : null,
      mine: this.describeLabel(op.label),
      count: this.saves.conflicts().length,
      keepMine: () => this.dispatch({ kind: "keepMine" }),
      takeServer: () => this.dispatch({ kind: "takeServer" }),
    });
  }

  private renderHelp(): HTMLElement {
    const groups = ["Label", "Navigate", "View", "Other"] as const;
    return helpModal(
      "A choice's key labels the frame with the current confidence and moves on. Confidence stays as set (Shift+1…5) for the next frames; on a labelled frame it also changes that label.",
      groups.map((group) => [group, helpRows(this.keymap, group)]),
      () => this.dispatch({ kind: "close" }),
    );
  }

  private toast(text: string, kind: "info" | "error" = "info"): void {
    this.toaster.show(text, kind);
  }

  // --- Frame display -----------------------------------------------------------------------------

  private place(frame: QueueFrame, image: HTMLImageElement, prefetched: boolean): void {
    if (this.stage.imageFrame !== frame.id) {
      // Never the previous frame's CAM over this one; the CAM starts as the user prefers.
      this.cam.setCam(null);
      this.camFor = null;
      this.camShown = camOnNewFrame();
    }
    this.stage.place(frame.id, image);
    this.phase = "frame";
    this.renderStageNote();
    this.shownAt = performance.now();
    perfPainted(this.perf, frame.id, prefetched);
    // Model output comes after the frame is painted: it never delays the frame.
    window.setTimeout(() => this.afterPaint(frame.id), 0);
  }

  // --- Model output --------------------------------------------------------------------------------

  private schema(): SchemaLookup {
    return {
      taskName: (key) => this.tasks.find((task) => task.key === key)?.name ?? key,
      choice: (key, value) => this.tasks.find((task) => task.key === key)?.choices.find((choice) => choice.value === value),
    };
  }

  private visibilityOf(frameId: number | undefined): AiVisibility {
    return (frameId === undefined ? undefined : this.ai.get(frameId)?.visibility) ?? AI_HIDDEN;
  }

  /** The frame on screen (its image is in the stage), if any. */
  private onScreen(): QueueFrame | undefined {
    const frame = this.current();
    return frame && this.phase === "frame" && this.stage.imageFrame === frame.id ? frame : undefined;
  }

  private afterPaint(frameId: number): void {
    if (this.disposed || this.onScreen()?.id !== frameId) return;
    this.updateModel();
    this.predictOnDemand(frameId);
    // And the next frame, so that moving on finds its prediction ready (never more ahead).
    const next = this.list.frames[this.list.cursor + 1];
    if (next) this.predictOnDemand(next.id);
  }

  /** The model panel (in place) and the CAM canvas for the frame on screen. */
  private updateModel(): void {
    this.renderModel();
    this.updateCam();
  }

  private renderModel(): HTMLElement {
    const panel = this.el.model;
    const frame = this.current();
    const visibility = this.visibilityOf(frame?.id);
    panel.hidden = !visibility.prediction;
    if (!frame || !visibility.prediction) {
      panel.replaceChildren();
      return panel;
    }
    const info = this.ai.get(frame.id)!;
    const schema = this.schema();
    const own = info.predictions.find((prediction) => prediction.task_key === this.task.key);
    // The task being labelled first, then the others in the schema's order.
    const predictions = own ? [own, ...info.predictions.filter((p) => p !== own)] : info.predictions;
    const status = info.pending.has(this.task.key)
      ? h("div", { class: "model-status muted small", "data-state": "predicting" }, "Predicting…")
      : info.failed.has(this.task.key)
        ? h("div", { class: "model-status muted small", "data-state": "failed" }, info.failed.get(this.task.key)!)
        : null;
    mount(
      panel,
      h("div", { class: "panel-title" }, "Model"),
      predictions.length === 0 && !status
        ? h("div", { class: "model-prediction muted small", "data-empty": "true" }, "No model prediction for this frame")
        : h("div", { class: "model-prediction" }, predictions.map((prediction) => predictionView(prediction, schema, prediction === own))),
      status,
      visibility.cam ? this.camControls(own) : null,
    );
    if (predictions.length > 0 && this.onScreen()?.id === frame.id && document.visibilityState === "visible") {
      this.exposure.predictionShown(frame.id);
    }
    return panel;
  }

  private camControls(own: Prediction | undefined): HTMLElement {
    return h(
      "div",
      { class: "cam-controls" },
      h(
        "label",
        { class: "check" },
        h("input", {
          type: "checkbox",
          class: "cam-toggle",
          checked: this.camShown,
          disabled: !own?.cam_url,
          tabindex: "-1",
          onchange: () => this.dispatch({ kind: "overlay" }),
        }),
        " Show the CAM ",
        h("kbd", {}, "Shift+M"),
      ),
      own?.cam_url ? null : h("div", { class: "muted small" }, "No CAM for this frame and task"),
      opacitySlider(this.camOpacity, (opacity) => this.setOpacity(opacity), ", ."),
      h(
        "label",
        { class: "check small muted" },
        h("input", {
          type: "checkbox",
          class: "cam-default",
          checked: camOnNewFrame(),
          tabindex: "-1",
          onchange: (event: Event) => {
            setCamOnNewFrame((event.target as HTMLInputElement).checked);
            (event.target as HTMLInputElement).blur();
          },
        }),
        " Show the CAM on every new frame",
      ),
    );
  }

  /** Put the CAM of the frame on screen (the labelled task's prediction) on the canvas, loading it
   * when it is to be shown, and keep the exposure timer in step. */
  private updateCam(): void {
    const frame = this.onScreen();
    const visibility = this.visibilityOf(frame?.id);
    const prediction = frame && visibility.cam ? this.ai.get(frame.id)?.predictions.find((p) => p.task_key === this.task.key) : undefined;
    const url = prediction?.cam_url ?? null;
    if (!frame || !url) {
      if (this.camFor) this.cam.setCam(null);
      this.camFor = null;
    } else if (this.camShown && (this.camFor?.frame !== frame.id || this.camFor.url !== url)) {
      this.cam.setCam(null);
      const wanted = { frame: frame.id, url };
      this.camFor = wanted;
      this.cams.get(url).then(
        (image) => {
          if (this.camFor !== wanted || this.disposed) return;
          this.cam.setCam(image);
          this.syncExposure();
        },
        () => {
          if (this.camFor === wanted) this.toast("The CAM could not be loaded.", "error");
        },
      );
    }
    this.cam.setVisible(this.camShown && visibility.cam && url !== null);
    this.syncExposure();
  }

  /** Tell the exposure timer whether the CAM is on screen now (and for which frame). */
  private syncExposure(): void {
    const frame = this.onScreen();
    const visible =
      !this.disposed &&
      frame !== undefined &&
      this.camFor?.frame === frame.id &&
      this.cam.onScreen() &&
      document.visibilityState === "visible";
    this.exposure.camOnScreen(visible ? frame.id : null);
    this.stage.element.dataset.cam = visible ? "on" : "off";
  }

  private toggleCam(): void {
    const frame = this.onScreen();
    if (!frame || !this.visibilityOf(frame.id).cam) {
      this.toast("No CAM is shown in this project.");
      return;
    }
    this.camShown = !this.camShown;
    this.updateModel();
  }

  private setOpacity(opacity: number): void {
    this.camOpacity = clampOpacity(opacity);
    storeOpacity(this.camOpacity);
    this.cam.setOpacity(this.camOpacity);
    syncOpacitySlider(this.el.model, this.camOpacity);
    this.syncExposure();
  }

  /** Ask the server to predict the labelled task for a frame that has an active model but no stored
   * prediction of it (once per frame; never for frames further ahead than the next). */
  private predictOnDemand(frameId: number): void {
    const info = this.ai.get(frameId);
    const task = this.task.key;
    if (!info?.visibility.prediction || !info.activeTasks.includes(task)) return;
    if (info.predictions.some((prediction) => prediction.task_key === task)) return;
    const key = `${frameId}:${task}`;
    if (this.demanded.has(key)) return;
    this.demanded.add(key);
    info.pending.add(task);
    if (this.current()?.id === frameId) this.renderModel();
    api.predict(frameId, task).then(
      (answer) => {
        info.pending.delete(task);
        const row = answer.body as Prediction | null;
        if ((answer.status === 200 || answer.status === 201) && row && typeof row === "object" && "task_key" in row) {
          info.predictions = [...info.predictions.filter((p) => p.task_key !== row.task_key), row];
        } else if (answer.status >= 500 || answer.status === 429) {
          this.demanded.delete(key); // asked again on the next visit
          info.failed.set(task, "The prediction could not be made now.");
        } else {
          info.failed.set(task, ApiError.describe(answer.status, answer.body));
        }
        if (!this.disposed && this.current()?.id === frameId) this.updateModel();
      },
      () => {
        info.pending.delete(task);
        this.demanded.delete(key);
        if (!this.disposed && this.current()?.id === frameId) this.updateModel();
      },
    );
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
      this.stage.hideStale(frame.id);
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
    // The current frame first, then the ones ahead in order, then the ones behind.
    this.prefetcher.want(this.list.prefetchOrder(BEHIND, AHEAD));
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
      // After the list's last frame (its cursor), so that the server starts there instead of walking
      // the queue from the start past every frame already labelled or skipped.
      const page = await get<QueuePage>(queuePath(this.project.id, this.task.id, ticket.limit, ticket.after));
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
      for (const context of frames) {
        this.contexts.set(context.frame, context);
        this.ai.set(context.frame, {
          visibility: context.ai ?? AI_HIDDEN,
          predictions: context.predictions ?? [],
          activeTasks: context.active_model_tasks ?? [],
          pending: new Set(),
          failed: new Map(),
        });
      }
      const current = this.current();
      if (current && ids.includes(current.id)) {
        this.renderSide();
        const shown = this.onScreen();
        if (shown) this.afterPaint(shown.id);
      }
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
    this.cleanups.push(this.stage.listen());
    const beforeUnload = (event: BeforeUnloadEvent) => {
      if (this.saves.pending() > 0 || this.saves.failed().some((op) => op.retryable) || this.saves.conflicts().length > 0) {
        event.preventDefault();
      }
    };
    window.addEventListener("beforeunload", beforeUnload);
    this.cleanups.push(() => window.removeEventListener("beforeunload", beforeUnload));
    // CAM time counts only while the tab is in front; the panel counts as seen once it is.
    const onVisibility = () => {
      this.syncExposure();
      if (document.visibilityState === "visible") this.renderModel();
    };
    document.addEventListener("visibilitychange", onVisibility);
    this.cleanups.push(() => document.removeEventListener("visibilitychange", onVisibility));
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
      case "zoomOut":
      case "resetView":
      case "pan":
      case "brightness":
      case "contrast":
      case "resetAdjust":
        if (isViewAction(action)) this.stage.handle(action);
        return;
      case "overlay":
        return this.toggleCam();
      case "opacity":
        return this.setOpacity(this.camOpacity + action.delta);
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
    if (!frame || this.phase !== "frame" || this.stage.imageFrame !== frame.id) {
      this.perf.pending = null;
      return;
    }
    if (this.saves.hasConflict(frame.id)) return;
    const before = this.saves.displayOf(frame.id);
    const label: Label = { value, confidence: this.confidence, ...this.exposure.of(frame.id) };
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
      const after = { value: label.value, confidence: level, ...this.exposure.of(frame.id) };
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
    // The earlier label goes back with what the reader has seen of the model by now.
    if (plan.kind === "put") this.saves.submit(entry.frameId, { ...plan.label, ...this.exposure.of(entry.frameId) }, null, "undo");
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
