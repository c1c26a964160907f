// The frame on screen: an <img> in a layer moved by a CSS transform (zoom with the wheel or the keys,
// pan by dragging or with Shift+arrows, double click fits) under a CSS brightness/contrast filter.
// The maths is viewport.ts; this is its DOM side, shared by the labelling workspace and the review
// page. Each page owns its keys and calls `handle` with the view actions of its keymap.

import { h } from "./dom";
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

export type ViewAction =
  | { kind: "zoomIn" }
  | { kind: "zoomOut" }
  | { kind: "resetView" }
  | { kind: "pan"; dx: number; dy: number }
  | { kind: "brightness"; delta: number }
  | { kind: "contrast"; delta: number }
  | { kind: "resetAdjust" };

const VIEW_KINDS = new Set(["zoomIn", "zoomOut", "resetView", "pan", "brightness", "contrast", "resetAdjust"]);

export function isViewAction(action: { kind: string }): action is ViewAction {
  return VIEW_KINDS.has(action.kind);
}

export interface FrameStageOptions {
  /** The frame's size before its image is there (from the queue's width and height). */
  sizeHint: () => Size;
  /** Double click: routed through the page so that it obeys the page's rules (a pending conflict). */
  dispatch: (action: ViewAction) => void;
}

export class FrameStage {
  readonly element = h("div", { class: "stage", tabindex: "-1", "aria-label": "Frame" });
  readonly layer = h("div", { class: "layer" });
  readonly note = h("div", { class: "stage-note", role: "status" });
  view: View = FIT;
  adjust: Adjust = NEUTRAL;
  image: HTMLImageElement | null = null;
  /** The frame whose image is in the layer (it may be hidden while the next one loads). */
  imageFrame: number | null = null;
  /** Where the page shows the zoom readout and the brightness/contrast sliders (see viewPanel). */
  controls: ParentNode | null = null;
  private drag: { x: number; y: number; id: number } | null = null;

  constructor(private readonly options: FrameStageOptions) {
    this.element.replaceChildren(this.layer, this.note);
  }

  stageSize(): Size {
    return { width: this.element.clientWidth, height: this.element.clientHeight };
  }

  imageSize(): Size {
    if (this.image) return { width: this.image.naturalWidth, height: this.image.naturalHeight };
    return this.options.sizeHint();
  }

  /** Wheel zoom, drag to pan, double click to fit, refit on resize; returns the cleanup. */
  listen(): () => void {
    const stage = this.element;
    const onWheel = (event: WheelEvent) => {
      event.preventDefault();
      const rect = stage.getBoundingClientRect();
      this.view = zoomAt(this.view, this.stageSize(), this.imageSize(), wheelFactor(event.deltaY, event.deltaMode), event.clientX - rect.left, event.clientY - rect.top);
      this.apply();
    };
    stage.addEventListener("wheel", onWheel, { passive: false });
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
      this.apply();
    });
    const endDrag = (event: PointerEvent) => {
      if (this.drag?.id !== event.pointerId) return;
      this.drag = null;
      stage.classList.remove("dragging");
    };
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);
    stage.addEventListener("dblclick", () => this.options.dispatch({ kind: "resetView" }));
    const resize = new ResizeObserver(() => this.apply());
    resize.observe(stage);
    return () => resize.disconnect();
  }

  /** Zoom, pan and adjust as the keys ask. */
  handle(action: ViewAction): void {
    switch (action.kind) {
      case "zoomIn":
      case "zoomOut": {
        const stage = this.stageSize();
        const factor = action.kind === "zoomIn" ? ZOOM_STEP : 1 / ZOOM_STEP;
        this.view = zoomAt(this.view, stage, this.imageSize(), factor, stage.width / 2, stage.height / 2);
        break;
      }
      case "resetView":
        this.view = FIT;
        break;
      case "pan":
        this.view = panBy(this.view, this.stageSize(), this.imageSize(), action.dx, action.dy);
        break;
      case "brightness":
        this.adjust = { ...this.adjust, brightness: clampAdjust(this.adjust.brightness + action.delta) };
        break;
      case "contrast":
        this.adjust = { ...this.adjust, contrast: clampAdjust(this.adjust.contrast + action.delta) };
        break;
      case "resetAdjust":
        this.adjust = NEUTRAL;
        break;
    }
    this.apply();
  }

  /** Draw the layer with the current view and adjustment, and update the readouts. */
  apply(): void {
    const stage = this.stageSize();
    const image = this.imageSize();
    this.layer.style.width = `${image.width}px`;
    this.layer.style.height = `${image.height}px`;
    this.layer.style.transform = cssTransform(this.view, stage, image);
    // Far in, show the pixels as they are rather than smoothed over.
    this.layer.classList.toggle("pixelated", scale(this.view, stage, image) >= 3);
    if (this.image) this.image.style.filter = cssFilter(this.adjust);
    const readout = this.controls?.querySelector(".zoom-readout");
    if (readout) readout.textContent = this.zoomText();
    for (const input of this.controls?.querySelectorAll<HTMLInputElement>("input[data-adjust]") ?? []) {
      input.value = String(this.adjust[input.dataset.adjust as keyof Adjust]);
    }
  }

  zoomText(): string {
    return `${Math.round(this.view.zoom * 100)} %`;
  }

  /** Put a decoded frame in the layer (below any overlay the page keeps there). */
  place(frameId: number, image: HTMLImageElement): void {
    image.className = "frame-image";
    image.alt = `Frame ${frameId}`;
    image.draggable = false;
    image.dataset.frame = String(frameId);
    if (this.image !== image) {
      if (this.image) this.image.remove();
      this.layer.insertBefore(image, this.layer.firstChild);
      this.image = image;
    }
    this.imageFrame = frameId;
    this.apply();
  }

  /** While another frame loads, the previous one is not left on screen as if it were it. */
  hideStale(frameId: number): void {
    if (this.image && this.imageFrame !== frameId) this.image.style.visibility = "hidden";
  }

  /** The "View" panel's controls: zoom readout, brightness and contrast sliders, fit and reset. */
  viewPanel(): HTMLElement {
    const dispatch = this.options.dispatch;
    return h(
      "section",
      { class: "panel" },
      h("div", { class: "panel-title" }, "View ", h("span", { class: "muted small zoom-readout" }, this.zoomText())),
      this.slider("Brightness", "brightness", "[ ]"),
      this.slider("Contrast", "contrast", "{ }"),
      h(
        "div",
        { class: "row" },
        h("button", { tabindex: "-1", onclick: () => dispatch({ kind: "zoomOut" }), title: "Zoom out (-)" }, "−"),
        h("button", { tabindex: "-1", onclick: () => dispatch({ kind: "zoomIn" }), title: "Zoom in (+)" }, "+"),
        h("button", { tabindex: "-1", onclick: () => dispatch({ kind: "resetView" }), title: "Fit (0)" }, "Fit"),
        h("button", { tabindex: "-1", onclick: () => dispatch({ kind: "resetAdjust" }), title: "Reset brightness and contrast (\\)" }, "Reset"),
      ),
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
          this.apply();
        },
        onchange: (event: Event) => (event.target as HTMLInputElement).blur(),
      }),
    );
  }
}
