// A reader's session of a reader study: /read/{session}.
//
// The labelling workspace's stage (zoom, pan, brightness/contrast), CAM overlay and prediction panel,
// around the study's rules (reading.ts): cases in the session's order, every question answered with
// its confidence, then Enter sends the case's answers. The AI is fetched only in an aided arm (in a
// sequential arm only after the first answers); an unaided session never asks for it, and the API
// refuses it anyway. The reading time leaves idle time out; how long the CAM was on screen goes with
// each answer.

import { ExposureTracker, type Prediction } from "./ai";
import { CamCache, CamCanvas, opacitySlider, predictionView, storedOpacity, storeOpacity, syncOpacitySlider, type SchemaLookup } from "./aiview";
import { ApiError, get, raw } from "./api";
import { h, mount } from "./dom";
import { buildKeymap, CONFIDENCE_NAMES, describeKey, KeymapError, repeatable, type Binding, type ChoiceAction, type Keymap } from "./keymap";
import { helpModal, pageState, Toast } from "./panels";
import { decodeImage } from "./prefetch";
import {
  aiShownIn,
  answersOf,
  ASSISTANCE_NAMES,
  availableText,
  canAnswer,
  casePhase,
  Drafts,
  editablePhase,
  nextSession,
  predictionsOfFrame,
  ReadingTimer,
  type CaseQuestion,
  type CaseView,
  type ReadingPhase,
  type SessionInfo,
} from "./reading";
import { NetworkError } from "./saves";
import { FrameStage, isViewAction, type ViewAction } from "./stage";

export interface ReaderOptions {
  session: number;
}

type ReaderAction =
  | ChoiceAction
  | ViewAction
  | { kind: "confidence"; level: 1 | 2 | 3 | 4 | 5 }
  | { kind: "submit" }
  | { kind: "nextQuestion" }
  | { kind: "prevQuestion" }
  | { kind: "nextCase" }
  | { kind: "prevCase" }
  | { kind: "nextFrame" }
  | { kind: "prevFrame" }
  | { kind: "overlay" }
  | { kind: "opacity"; delta: number }
  | { kind: "help" }
  | { kind: "close" };

const PAN = 60;
const READER_BINDINGS: readonly Binding<ReaderAction>[] = [
  ...([1, 2, 3, 4, 5] as const).map(
    (level): Binding<ReaderAction> => ({
      keys: [String(level), `Shift+${level}`],
      action: { kind: "confidence", level },
      description: `Confidence ${level} (${CONFIDENCE_NAMES[level]}); a digit that is an answer's key needs Shift`,
      group: "Label",
    }),
  ),
  { keys: ["Enter"], action: { kind: "submit" }, description: "Send the case's answers", group: "Label" },
  { keys: ["ArrowDown", "Tab"], action: { kind: "nextQuestion" }, description: "Next question", group: "Label" },
  { keys: ["ArrowUp", "Shift+Tab"], action: { kind: "prevQuestion" }, description: "Previous question", group: "Label" },
  { keys: ["ArrowRight"], action: { kind: "nextCase" }, description: "Next case (one already answered)", group: "Navigate" },
  { keys: ["ArrowLeft"], action: { kind: "prevCase" }, description: "Previous case (where the study allows going back)", group: "Navigate" },
  { keys: ["PageDown"], action: { kind: "nextFrame" }, description: "Next frame of the case", group: "Navigate" },
  { keys: ["PageUp"], action: { kind: "prevFrame" }, description: "Previous frame of the case", group: "Navigate" },
  { keys: ["+", "="], action: { kind: "zoomIn" }, description: "Zoom in (or mouse wheel)", group: "View" },
  { keys: ["-", "_"], action: { kind: "zoomOut" }, description: "Zoom out", group: "View" },
  { keys: ["0", "Shift+0"], action: { kind: "resetView" }, description: "Fit the frame", group: "View" },
  { keys: ["Shift+ArrowLeft"], action: { kind: "pan", dx: PAN, dy: 0 }, description: "Pan left (or drag)", group: "View" },
  { keys: ["Shift+ArrowRight"], action: { kind: "pan", dx: -PAN, dy: 0 }, description: "Pan right", group: "View" },
  { keys: ["Shift+ArrowUp"], action: { kind: "pan", dx: 0, dy: PAN }, description: "Pan up", group: "View" },
  { keys: ["Shift+ArrowDown"], action: { kind: "pan", dx: 0, dy: -PAN }, description: "Pan down", group: "View" },
  { keys: ["["], action: { kind: "brightness", delta: -0.1 }, description: "Darker", group: "View" },
  { keys: ["]"], action: { kind: "brightness", delta: 0.1 }, description: "Brighter", group: "View" },
  { keys: ["{"], action: { kind: "contrast", delta: -0.1 }, description: "Less contrast", group: "View" },
  { keys: ["}"], action: { kind: "contrast", delta: 0.1 }, description: "More contrast", group: "View" },
  { keys: ["\\"], action: { kind: "resetAdjust" }, description: "Reset brightness and contrast", group: "View" },
  { keys: ["Shift+m"], action: { kind: "overlay" }, description: "Show or hide the CAM (in an arm that shows it)", group: "View" },
  { keys: [","], action: { kind: "opacity", delta: -0.1 }, description: "CAM more transparent", group: "View" },
  { keys: ["."], action: { kind: "opacity", delta: 0.1 }, description: "CAM more opaque", group: "View" },
  { keys: ["?"], action: { kind: "help" }, description: "Show or hide this help", group: "Other" },
  { keys: ["Escape"], action: { kind: "close" }, description: "Close the help", group: "Other" },
];

type PageState = "loading" | "case" | "sending" | "finished";

export class ReaderPage {
  private info!: SessionInfo;
  private view: CaseView | null = null;
  private phase: ReadingPhase = "first";
  private drafts: Drafts | null = null;
  private focus = 0;
  private frameIndex = 0;
  private predictions: Prediction[] = [];
  private keymaps = new Map<string, Keymap<ReaderAction>>();
  private state: PageState = "loading";
  private timer = new ReadingTimer();
  private helpOpen = false;
  private disposed = false;
  private readonly exposure = new ExposureTracker();
  private readonly cams = new CamCache();
  private readonly cam = new CamCanvas(storedOpacity());
  private camOpacity = storedOpacity();
  private camShown = true;
  private camUrl: string | null = null;
  private readonly cleanups: (() => void)[] = [];
  private readonly toaster = new Toast();
  private readonly stage = new FrameStage({
    sizeHint: () => {
      const frame = this.view?.frames[this.frameIndex];
      return { width: frame?.width ?? 1, height: frame?.height ?? 1 };
    },
    dispatch: (action) => this.dispatch(action),
  });
  private readonly el = {
    side: h("aside", { class: "side" }),
    model: h("section", { class: "panel model" }),
    footer: h("footer", { class: "ws-footer" }),
    modal: h("div", { class: "modal-root" }),
  };

  constructor(
    private readonly root: HTMLElement,
    private readonly options: ReaderOptions,
  ) {}

  async start(): Promise<void> {
    mount(this.root, h("div", { class: "center muted" }, "Loading the reading session…"));
    try {
      this.info = await get<SessionInfo>(`/api/reading-sessions/${this.options.session}/`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        mount(this.root, pageState("not-found", "Not found", "This reading session does not exist, or it is not yours."));
        return;
      }
      throw error;
    }
    document.title = `${this.info.study_name} · reading · CLEAR`;
    if (this.info.completed_at !== null) return this.finished();
    if (!this.info.available && this.info.completed_at === null) return this.unavailable(this.info);
    this.layout();
    this.listen();
    await this.open(this.info.current_position ?? 0);
  }

  dispose(): void {
    this.disposed = true;
    this.exposure.camOnScreen(null);
    for (const cleanup of this.cleanups) cleanup();
    this.toaster.dispose();
  }

  // --- Loading a case ----------------------------------------------------------------------------

  private async open(position: number): Promise<void> {
    this.state = "loading";
    this.exposure.camOnScreen(null);
    this.renderAll();
    const answer = await raw("GET", `/api/reading-sessions/${this.info.id}/cases/${position}/`);
    if (this.disposed) return;
    if (answer.status === 409 || answer.status === 400) {
      // Out of turn or refused (the washout, a locked study): the session's own state says why.
      this.info = await get<SessionInfo>(`/api/reading-sessions/${this.info.id}/`);
      if (this.info.completed_at !== null) return this.finished();
      if (!this.info.available) return this.unavailable(this.info);
      this.toast(ApiError.describe(answer.status, answer.body), "error");
      if (position !== this.info.current_position && this.info.current_position !== null) return this.open(this.info.current_position);
      return;
    }
    if (answer.status >= 400) throw new ApiError(answer.status, answer.body);
    const view = answer.body as CaseView;
    this.view = view;
    this.phase = editablePhase(view);
    const earlier = this.phase === "revised" && answersOf(view, "revised").size === 0 ? answersOf(view, "first") : answersOf(view, this.phase);
    this.drafts = new Drafts(view.questions, earlier);
    this.focus = Math.max(0, view.questions.indexOf(this.drafts.firstIncomplete() ?? view.questions[0]!));
    this.frameIndex = 0;
    this.predictions = [];
    this.camUrl = null;
    this.cam.setCam(null);
    this.timer = new ReadingTimer();
    this.buildKeymaps(view.questions);
    this.state = "case";
    this.renderAll();
    await this.showFrame();
    if (aiShownIn(view.arm, this.phase) && view.ai_available) await this.loadAi();
  }

  private buildKeymaps(questions: readonly CaseQuestion[]): void {
    this.keymaps.clear();
    for (const question of questions) {
      const choices = question.choices.map((choice) => ({ ...choice, is_active: true }));
      try {
        this.keymaps.set(question.key, buildKeymap<ReaderAction>(choices, READER_BINDINGS, "Label"));
      } catch (error) {
        if (!(error instanceof KeymapError)) throw error;
        // Choices stay clickable; only their keys are off.
        this.keymaps.set(question.key, buildKeymap<ReaderAction>([], READER_BINDINGS, "Label"));
        this.toast(error.message, "error");
      }
    }
  }

  private async showFrame(): Promise<void> {
    const frame = this.view?.frames[this.frameIndex];
    if (!frame) return;
    this.stage.hideStale(frame.id);
    try {
      const image = await decodeImage(frame.image_url);
      if (this.disposed || this.view?.frames[this.frameIndex]?.id !== frame.id) return;
      image.style.visibility = "";
      this.stage.place(frame.id, image);
      this.stage.element.dataset.frame = String(frame.id);
    } catch {
      this.toast("The frame could not be loaded.", "error");
    }
    this.renderCam();
  }

  private async loadAi(): Promise<void> {
    const view = this.view!;
    const answer = await raw("GET", `/api/reading-sessions/${this.info.id}/cases/${view.position}/ai/`);
    if (this.disposed || this.view !== view) return;
    if (answer.status !== 200) {
      this.toast(`The AI could not be shown: ${ApiError.describe(answer.status, answer.body)}`, "error");
      return;
    }
    this.predictions = answer.body as Prediction[];
    if (this.predictions.length > 0) this.exposure.predictionShown(view.case);
    this.renderModel();
    this.renderCam();
  }

  // --- Answering -----------------------------------------------------------------------------------

  private editable(): boolean {
    return this.view !== null && this.state === "case" && canAnswer(this.view, this.phase);
  }

  private question(): CaseQuestion | undefined {
    return this.view?.questions[this.focus];
  }

  private choose(value: string): void {
    const question = this.question();
    if (!question || !this.drafts) return;
    if (!this.editable()) return this.toast(this.lockedReason(), "error");
    this.drafts.choose(question.key, value);
    this.advanceIfComplete(question);
  }

  private rate(level: number): void {
    const question = this.question();
    if (!question || !this.drafts) return;
    if (!this.editable()) return this.toast(this.lockedReason(), "error");
    if (!question.ask_confidence) return this.toast(`“${question.name}” does not ask for a confidence.`);
    this.drafts.rate(question.key, level);
    this.advanceIfComplete(question);
  }

  /** Once a question has what it asks for, the next incomplete one takes the keys. */
  private advanceIfComplete(question: CaseQuestion): void {
    const drafts = this.drafts!;
    if (drafts.complete(question)) {
      const next = drafts.firstIncomplete();
      if (next) this.focus = this.view!.questions.indexOf(next);
    }
    this.renderSide();
  }

  private lockedReason(): string {
    if (this.state === "sending") return "Sending your answers…";
    if (this.view?.arm.sequential && this.phase === "first") return "Your first answer is final once sent.";
    return "This study does not allow changing an answer once sent.";
  }

  private async submit(): Promise<void> {
    const view = this.view;
    const drafts = this.drafts;
    if (!view || !drafts || this.state !== "case") return;
    if (!canAnswer(view, this.phase)) return this.toast(this.lockedReason(), "error");
    this.exposure.camOnScreen(null);
    const exposure = aiShownIn(view.arm, this.phase) ? this.exposure.of(view.case) : { aiShown: false, camVisibleMs: 0 };
    const answers = drafts.answers(this.phase, this.timer.elapsed(), exposure);
    if (!answers) {
      this.syncExposure();
      return this.toast(`Still missing: ${drafts.missing().join(", ")}.`, "error");
    }
    this.state = "sending";
    this.renderAll();
    for (const body of answers) {
      let answer;
      try {
        answer = await raw("PUT", `/api/reading-sessions/${this.info.id}/cases/${view.position}/readings/`, body);
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error;
        this.state = "case";
        this.renderAll();
        this.syncExposure();
        return this.toast("The server could not be reached: nothing is lost, press Enter to send again.", "error");
      }
      if (this.disposed) return;
      if (answer.status >= 400) {
        this.toast(ApiError.describe(answer.status, answer.body), "error");
        return this.open(view.position);
      }
    }
    // Where to go on: the same case for a sequential arm's revised answer, else the first unanswered.
    this.info = await get<SessionInfo>(`/api/reading-sessions/${this.info.id}/`);
    if (this.disposed) return;
    if (this.info.current_position === null) return this.finished();
    return this.open(this.info.current_position);
  }

  // --- Navigation ----------------------------------------------------------------------------------

  private goToCase(delta: number): void {
    const view = this.view;
    if (!view || this.state !== "case") return;
    const target = view.position + delta;
    const last = view.current_position ?? view.case_count - 1;
    if (target < 0 || target > last) {
      return this.toast(target < 0 ? "This is the first case." : "Answer this case first.");
    }
    if (delta < 0 && !view.allow_navigation) return this.toast("This study does not allow going back to earlier cases.", "error");
    void this.open(target);
  }

  private goToFrame(delta: number): void {
    const frames = this.view?.frames ?? [];
    const target = this.frameIndex + delta;
    if (target < 0 || target >= frames.length) return;
    this.frameIndex = target;
    this.stage.handle({ kind: "resetView" });
    this.renderAll();
    void this.showFrame();
  }

  // --- Keys ----------------------------------------------------------------------------------------

  private listen(): void {
    const onKey = (event: KeyboardEvent) => this.onKey(event);
    window.addEventListener("keydown", onKey);
    this.cleanups.push(() => window.removeEventListener("keydown", onKey));
    this.cleanups.push(this.stage.listen());
    // Signs that the reader is there: the reading timer counts up to a minute between them.
    const onActivity = () => this.timer.activity();
    for (const type of ["pointermove", "pointerdown", "wheel", "keydown"] as const) {
      window.addEventListener(type, onActivity, { passive: true, capture: true });
      this.cleanups.push(() => window.removeEventListener(type, onActivity, { capture: true }));
    }
    const onVisibility = () => {
      this.timer.hidden(document.visibilityState !== "visible");
      this.syncExposure();
    };
    document.addEventListener("visibilitychange", onVisibility);
    this.cleanups.push(() => document.removeEventListener("visibilitychange", onVisibility));
  }

  private onKey(event: KeyboardEvent): void {
    const target = event.target as HTMLElement | null;
    if (target && (target.isContentEditable || ["TEXTAREA", "SELECT"].includes(target.tagName))) return;
    if (target?.tagName === "INPUT" && (target as HTMLInputElement).type !== "range") return;
    const question = this.question();
    const keymap = question ? this.keymaps.get(question.key) : undefined;
    const action = keymap?.byKey.get(describeKey(event));
    if (!action) return;
    event.preventDefault();
    if (event.repeat && !repeatable(action)) return;
    this.dispatch(action);
  }

  private dispatch(action: ReaderAction): void {
    if (this.helpOpen && action.kind !== "help" && action.kind !== "close") return;
    if (isViewAction(action)) return this.stage.handle(action);
    switch (action.kind) {
      case "choice":
        return this.choose(action.value);
      case "confidence":
        return this.rate(action.level);
      case "submit":
        return void this.submit();
      case "nextQuestion":
      case "prevQuestion": {
        const count = this.view?.questions.length ?? 0;
        if (count === 0) return;
        this.focus = (this.focus + (action.kind === "nextQuestion" ? 1 : count - 1)) % count;
        return this.renderSide();
      }
      case "nextCase":
        return this.goToCase(1);
      case "prevCase":
        return this.goToCase(-1);
      case "nextFrame":
        return this.goToFrame(1);
      case "prevFrame":
        return this.goToFrame(-1);
      case "overlay":
        if (!this.camArm()) return this.toast("This arm shows no CAM.");
        this.camShown = !this.camShown;
        return this.renderCam();
      case "opacity":
        if (!this.camArm()) return;
        return this.setOpacity(this.camOpacity + action.delta);
      case "help":
        this.helpOpen = !this.helpOpen;
        return this.renderModal();
      case "close":
        this.helpOpen = false;
        return this.renderModal();
    }
  }

  // --- AI on screen --------------------------------------------------------------------------------

  private camArm(): boolean {
    return this.view?.arm.assistance === "prediction_and_cam" && aiShownIn(this.view.arm, this.phase);
  }

  private setOpacity(value: number): void {
    this.camOpacity = Math.round(Math.min(1, Math.max(0, value)) * 100) / 100;
    storeOpacity(this.camOpacity);
    this.cam.setOpacity(this.camOpacity);
    syncOpacitySlider(this.el.model, this.camOpacity);
    this.syncExposure();
  }

  /** The CAM of the frame on screen, over it, where the arm shows CAMs and the reader has it on. */
  private renderCam(): void {
    const frame = this.view?.frames[this.frameIndex];
    const url = frame && this.camArm() ? (predictionsOfFrame(this.predictions, frame.id, this.view!.questions).find((row) => row.cam_url)?.cam_url ?? null) : null;
    if (url !== this.camUrl) {
      this.camUrl = url;
      this.cam.setCam(null);
      if (url) {
        this.cams.get(url).then(
          (image) => {
            if (this.camUrl !== url || this.disposed) return;
            this.cam.setCam(image);
            this.syncExposure();
          },
          () => this.toast("The CAM could not be loaded.", "error"),
        );
      }
    }
    this.cam.setVisible(this.camShown && url !== null && this.state === "case");
    this.stage.element.dataset.camShown = String(this.camShown);
    this.syncExposure();
  }

  private syncExposure(): void {
    const view = this.view;
    const visible = !this.disposed && view !== null && this.state === "case" && this.cam.onScreen() && document.visibilityState === "visible";
    this.exposure.camOnScreen(visible ? view.case : null);
    this.stage.element.dataset.cam = visible ? "on" : "off";
  }

  // --- Rendering -----------------------------------------------------------------------------------

  private layout(): void {
    this.stage.layer.replaceChildren(this.cam.element);
    this.stage.controls = this.el.side;
    mount(
      this.root,
      h(
        "div",
        { class: "workspace reader", "data-session": this.info.id, "data-assistance": this.info.arm.assistance },
        h("main", { class: "stage-wrap" }, this.stage.element),
        this.el.side,
        this.el.footer,
        this.el.modal,
        this.toaster.element,
      ),
    );
  }

  private renderAll(): void {
    this.renderSide();
    this.renderFooter();
    this.renderModal();
    this.stage.element.dataset.state = this.state;
    this.stage.note.textContent = this.state === "loading" ? "Loading the case…" : "";
    this.stage.note.hidden = this.state !== "loading";
    if (this.state !== "case") this.cam.setVisible(false);
    this.syncExposure();
  }

  private schema(): SchemaLookup {
    const questions = this.view?.questions ?? [];
    return {
      taskName: (task) => questions.find((question) => question.key === task)?.name ?? task,
      choice: (task, value) => questions.find((question) => question.key === task)?.choices.find((choice) => choice.value === value),
    };
  }

  private renderSide(): void {
    const view = this.view;
    if (!view || !this.drafts) {
      mount(this.el.side, h("section", { class: "panel" }, h("div", { class: "panel-title" }, this.info.study_name)));
      return;
    }
    const editable = this.editable();
    const phaseText =
      this.phase === "revised"
        ? "Now with the AI: your final answer (it starts from your first answer; change it or keep it)."
        : view.arm.sequential
          ? "Your first answer, without the AI. It is final once sent; then the AI is shown."
          : "";
    mount(
      this.el.side,
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-title" }, this.info.study_name),
        h("div", { class: "small", "data-arm": view.arm.assistance }, `Period ${this.info.period}: read ${ASSISTANCE_NAMES[view.arm.assistance]}`),
        view.is_training ? h("div", { class: "chip training", "data-training": "true" }, "Training case (not analysed)") : null,
        phaseText ? h("p", { class: "muted small", "data-phase": this.phase }, phaseText) : null,
      ),
      view.questions.map((question, index) => this.renderQuestion(question, index === this.focus, editable)),
      h(
        "section",
        { class: "panel" },
        h(
          "button",
          { class: "primary send", "data-action": "submit", disabled: !editable, tabindex: "-1", onclick: () => this.dispatch({ kind: "submit" }) },
          this.state === "sending" ? "Sending…" : "Send answers ",
          h("kbd", {}, "Enter"),
        ),
        !editable && this.state === "case" ? h("div", { class: "muted small", "data-state": "answered" }, this.lockedReason()) : null,
      ),
      this.renderModel(),
      this.stage.viewPanel(),
      h("section", { class: "panel" }, h("button", { class: "link", tabindex: "-1", onclick: () => this.dispatch({ kind: "help" }) }, "Keyboard shortcuts (?)")),
    );
  }

  private renderQuestion(question: CaseQuestion, focused: boolean, editable: boolean): HTMLElement {
    const draft = this.drafts!.get(question.key);
    const select = () => {
      this.focus = this.view!.questions.indexOf(question);
      this.renderSide();
    };
    return h(
      "section",
      { class: `panel question${focused ? " focused" : ""}`, "data-question": question.key, onclick: select },
      h("div", { class: "panel-title" }, question.name, focused ? h("span", { class: "muted small" }, " · keys") : null),
      h(
        "ul",
        { class: "choices" },
        question.choices.map((choice) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                class: `choice${draft.value === choice.value ? " chosen" : ""}`,
                "data-value": choice.value,
                disabled: !editable,
                tabindex: "-1",
                onclick: () => {
                  select();
                  this.choose(choice.value);
                },
              },
              h("span", { class: "swatch", style: { background: choice.color } }),
              h("span", { class: "choice-label" }, choice.label),
              choice.hotkey && focused ? h("kbd", {}, choice.hotkey) : null,
            ),
          ),
        ),
      ),
      question.ask_confidence
        ? h(
            "div",
            { class: "confidence", role: "radiogroup", "aria-label": `Confidence in ${question.name}` },
            ([1, 2, 3, 4, 5] as const).map((level) =>
              h(
                "button",
                {
                  class: `conf${draft.confidence === level ? " on" : ""}`,
                  role: "radio",
                  "aria-checked": String(draft.confidence === level),
                  "data-level": level,
                  title: `${level}: ${CONFIDENCE_NAMES[level]}`,
                  disabled: !editable,
                  tabindex: "-1",
                  onclick: () => {
                    select();
                    this.rate(level);
                  },
                },
                String(level),
              ),
            ),
          )
        : null,
      question.ask_confidence
        ? h("div", { class: "muted small" }, draft.confidence === null ? "Confidence: not given (1 guess … 5 certain)" : `Confidence: ${CONFIDENCE_NAMES[draft.confidence as 1 | 2 | 3 | 4 | 5]}`)
        : null,
    );
  }

  private renderModel(): HTMLElement {
    const panel = this.el.model;
    const view = this.view;
    const shown = view !== null && aiShownIn(view.arm, this.phase) && view.ai_available;
    panel.hidden = !shown;
    if (!view || !shown) {
      panel.replaceChildren();
      return panel;
    }
    const frame = view.frames[this.frameIndex];
    const rows = frame ? predictionsOfFrame(this.predictions, frame.id, view.questions) : [];
    mount(
      panel,
      h("div", { class: "panel-title" }, "AI"),
      rows.length === 0
        ? h("div", { class: "model-prediction muted small", "data-empty": "true" }, "No AI prediction for this frame")
        : h("div", { class: "model-prediction" }, rows.map((row) => predictionView(row, this.schema()))),
      this.camArm()
        ? h(
            "div",
            { class: "cam-controls" },
            h("label", { class: "check" }, h("input", { type: "checkbox", class: "cam-toggle", checked: this.camShown, tabindex: "-1", onchange: () => this.dispatch({ kind: "overlay" }) }), " Show the CAM ", h("kbd", {}, "Shift+M")),
            opacitySlider(this.camOpacity, (value) => this.setOpacity(value), ", ."),
          )
        : null,
    );
    return panel;
  }

  private renderFooter(): void {
    const view = this.view;
    const total = view?.case_count ?? this.info.case_count;
    const done = view ? (view.current_position ?? total) : 0;
    const position = view ? view.position + 1 : 0;
    const frames = view?.frames.length ?? 0;
    mount(
      this.el.footer,
      h(
        "div",
        { class: "progress-wrap" },
        h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(total), "aria-valuenow": String(done) }, h("div", { class: "progress-fill", style: { width: `${total ? (done / total) * 100 : 0}%` } })),
        h(
          "div",
          { class: "muted small" },
          h("span", { "data-position": position }, `Case ${position} of ${total}`),
          ` · ${done} answered`,
          frames > 1 ? ` · frame ${this.frameIndex + 1} of ${frames} (PageUp/PageDown)` : "",
          view && casePhase(view) === "done" ? " · answered" : "",
        ),
      ),
    );
  }

  private renderModal(): void {
    if (!this.helpOpen) {
      this.el.modal.replaceChildren();
      return;
    }
    const question = this.question();
    const keymap = question ? this.keymaps.get(question.key) : undefined;
    const groups: [string, [string[], string][]][] = ["Label", "Navigate", "View", "Other"].map((group) => [
      group,
      (keymap?.bindings ?? []).filter((binding) => binding.group === group).map((binding): [string[], string] => [binding.keys, binding.description]),
    ]);
    mount(
      this.el.modal,
      helpModal(
        "Each question's answer keys work while it is selected (↑/↓). Give every answer and its confidence, then Enter sends the case.",
        groups,
        () => this.dispatch({ kind: "close" }),
      ),
    );
  }

  // --- Whole-page states ---------------------------------------------------------------------------

  private unavailable(info: SessionInfo): void {
    mount(
      this.root,
      h(
        "div",
        { class: "center", "data-state": "unavailable", role: "status" },
        h("h1", {}, info.study_name),
        h("p", { "data-reason": "" }, availableText(info)),
        h("a", { href: "/", "data-route": "" }, "Back to your projects"),
      ),
    );
  }

  private async finished(): Promise<void> {
    this.state = "finished";
    this.exposure.camOnScreen(null);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    const sessions = await get<SessionInfo[] | { results: SessionInfo[] }>(`/api/reading-sessions/`).catch(() => []);
    if (this.disposed) return;
    const list = Array.isArray(sessions) ? sessions : sessions.results;
    const next = nextSession(list, this.info);
    mount(
      this.root,
      h(
        "div",
        { class: "center", "data-state": "finished", role: "status" },
        h("h1", {}, "Session complete"),
        h("p", {}, `You answered all ${this.info.case_count} cases of period ${this.info.period} of “${this.info.study_name}”. Thank you.`),
        next
          ? next.available
            ? h("p", {}, h("a", { href: `/read/${next.id}`, "data-route": "", "data-next-session": next.id }, `Go on with period ${next.period}`))
            : h("p", { "data-reason": "", "data-next-session": next.id }, availableText(next))
          : null,
        h("a", { href: "/", "data-route": "" }, "Back to your projects"),
      ),
    );
  }

  private toast(text: string, kind: "info" | "error" = "info"): void {
    this.toaster.show(text, kind);
  }
}
