// Model output beside the frame, the DOM side: a prediction's rows for the model panel, the CAM
// canvas over the frame, the opacity slider and the user's preferences. Shared by the labelling
// workspace and the upload-and-classify page; the maths is ai.ts.

import { clampOpacity, colorizeCam, gateRefusal, percent, ranked, type GateDecision, type Probability } from "./ai";
import { h } from "./dom";

const OPACITY_KEY = "clear.camOpacity";
const CAM_ON_NEW_FRAME_KEY = "clear.camOnNewFrame";

/** The CAM opacity the user last set (0..1; 50 % at first). */
export function storedOpacity(): number {
  const raw = localStorage.getItem(OPACITY_KEY);
  return raw === null ? 0.5 : clampOpacity(Number(raw));
}

export function storeOpacity(value: number): void {
  localStorage.setItem(OPACITY_KEY, String(clampOpacity(value)));
}

/**
 * Whether a new frame opens with its CAM shown. Off unless the user turns it on: the reader's first
 * look at a frame should be their own, with the heatmap one key away (Shift+M) rather than steering
 * the eye before they have formed a view. The prediction itself stays in the side panel.
 */
export function camOnNewFrame(): boolean {
  return localStorage.getItem(CAM_ON_NEW_FRAME_KEY) === "1";
}

export function setCamOnNewFrame(on: boolean): void {
  localStorage.setItem(CAM_ON_NEW_FRAME_KEY, on ? "1" : "0");
}

// --- CAM images ----------------------------------------------------------------------------------

/** A decoded CAM: RGBA pixels of the grayscale PNG (value in R), at its own small size. */
export interface CamImage {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

/** Fetch (same origin, session cookie) and decode a CAM PNG, or a data: URL of one. */
export async function loadCam(url: string): Promise<CamImage> {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  if (!context) throw new Error("No 2D canvas.");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  return { width: pixels.width, height: pixels.height, data: pixels.data };
}

/** Decoded CAMs by URL (they are small and immutable: the URL names the prediction). */
export class CamCache {
  private readonly entries = new Map<string, Promise<CamImage>>();

  constructor(private readonly limit = 40) {}

  get(url: string): Promise<CamImage> {
    let entry = this.entries.get(url);
    if (entry) {
      // Most recently used last.
      this.entries.delete(url);
      this.entries.set(url, entry);
      return entry;
    }
    entry = loadCam(url);
    entry.catch(() => this.entries.delete(url));
    this.entries.set(url, entry);
    while (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
    return entry;
  }
}

/**
 * The canvas over the frame. It holds the CAM at the CAM's own size and is stretched by CSS over the
 * frame's layer (the CAM spans the whole stored frame, see inference/ml/cam.py render_cam), so it
 * follows the frame's zoom and pan exactly: both sit in the same transformed layer.
 */
export class CamCanvas {
  readonly element = h("canvas", { class: "cam-overlay", "aria-hidden": "true" });
  private cam: CamImage | null = null;
  private opacity: number;
  private visible = false;

  constructor(opacity: number) {
    this.opacity = clampOpacity(opacity);
    this.element.hidden = true;
  }

  /** The CAM to draw (null: none). */
  setCam(cam: CamImage | null): void {
    this.cam = cam;
    this.draw();
  }

  hasCam(): boolean {
    return this.cam !== null;
  }

  setOpacity(opacity: number): void {
    this.opacity = clampOpacity(opacity);
    this.draw();
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    this.element.hidden = !this.onScreen();
  }

  /** Whether any of the CAM is on screen now: shown, drawn, opacity above 0. */
  onScreen(): boolean {
    return this.visible && this.cam !== null && this.opacity > 0;
  }

  private draw(): void {
    const cam = this.cam;
    this.element.hidden = !this.onScreen();
    if (!cam) return;
    if (this.element.width !== cam.width) this.element.width = cam.width;
    if (this.element.height !== cam.height) this.element.height = cam.height;
    const context = this.element.getContext("2d");
    if (!context) return;
    const out = context.createImageData(cam.width, cam.height);
    colorizeCam(cam.data, this.opacity, out.data);
    context.putImageData(out, 0, 0);
    this.element.dataset.opacity = String(this.opacity);
  }
}

/** The "CAM opacity" slider, 0..100 %. */
export function opacitySlider(value: number, onInput: (opacity: number) => void, keys?: string): HTMLElement {
  const readout = h("span", { class: "opacity-readout muted small" }, percent(value));
  return h(
    "label",
    { class: "slider cam-opacity" },
    h("span", {}, "CAM opacity ", readout, keys ? h("kbd", {}, keys) : null),
    h("input", {
      type: "range",
      min: "0",
      max: "100",
      step: "5",
      value: String(Math.round(value * 100)),
      tabindex: "-1",
      "aria-label": "CAM opacity",
      oninput: (event: Event) => {
        const opacity = clampOpacity(Number((event.target as HTMLInputElement).value) / 100);
        readout.textContent = percent(opacity);
        onInput(opacity);
      },
      onchange: (event: Event) => (event.target as HTMLInputElement).blur(),
    }),
  );
}

/** Set the slider's position and readout (after a key changed the opacity). */
export function syncOpacitySlider(root: ParentNode, opacity: number): void {
  const input = root.querySelector<HTMLInputElement>(".cam-opacity input");
  if (input) input.value = String(Math.round(opacity * 100));
  const readout = root.querySelector(".cam-opacity .opacity-readout");
  if (readout) readout.textContent = percent(opacity);
}

// --- Predictions in the panel ----------------------------------------------------------------------

/** Names and colours from the label schema, by task key and choice value. */
export interface SchemaLookup {
  taskName(task: string): string;
  choice(task: string, value: string): { label: string; color: string } | undefined;
}

/** What the panel shows of one prediction (a stored row or an upload's result). */
export interface ShownPrediction {
  task_key: string;
  model_version_name: string;
  predicted_value: string;
  confidence: number | null;
  probabilities: Probability[];
  gate_passed?: boolean | null;
  gate?: GateDecision | null;
}

function gateNote(prediction: ShownPrediction, schema: SchemaLookup): HTMLElement | null {
  const gate = prediction.gate;
  if (!gate || prediction.gate_passed !== true) return null;
  const label = schema.choice(gate.task_key, gate.predicted_value)?.label ?? gate.predicted_value;
  const confidence = gate.confidence === null ? "" : ` ${gate.confidence.toFixed(2)}`;
  return h("div", { class: "gate-note muted small" }, `Diagnostic (${gate.task_key}: ${label}${confidence})`);
}

/** One task's prediction: class with colour and probability, the distribution, the model version and
 * the gate's decision ("Not diagnostic (quality: bad 0.91)" and no class when it kept the frame out). */
export function predictionView(prediction: ShownPrediction, schema: SchemaLookup, current = false): HTMLElement {
  const labelOf = (task: string, value: string) => schema.choice(task, value)?.label ?? value;
  const refusal = gateRefusal(prediction, labelOf);
  const gateState = prediction.gate_passed === false ? "refused" : prediction.gate_passed === true ? "passed" : "none";
  const head = h(
    "div",
    { class: "prediction-head" },
    h("span", { class: "prediction-task" }, schema.taskName(prediction.task_key)),
    h("span", { class: "model-name muted small", title: "Model version" }, prediction.model_version_name),
  );
  if (refusal !== null) {
    return h(
      "div",
      { class: `prediction${current ? " current" : ""}`, "data-task": prediction.task_key, "data-gate": gateState },
      head,
      h("div", { class: "prediction-class not-diagnostic" }, refusal),
    );
  }
  const choice = schema.choice(prediction.task_key, prediction.predicted_value);
  const distribution = ranked(prediction.probabilities);
  return h(
    "div",
    { class: `prediction${current ? " current" : ""}`, "data-task": prediction.task_key, "data-gate": gateState },
    head,
    h(
      "div",
      { class: "prediction-class", "data-value": prediction.predicted_value },
      h("span", { class: "swatch", style: { background: choice?.color ?? "#888" } }),
      ` ${choice?.label ?? prediction.predicted_value} `,
      h("b", { class: "prediction-probability" }, prediction.confidence === null ? "" : percent(prediction.confidence)),
    ),
    h(
      "ul",
      { class: "distribution", "aria-label": "Probabilities" },
      distribution.map((row) => {
        const rowChoice = schema.choice(prediction.task_key, row.value);
        return h(
          "li",
          { "data-value": row.value, title: `${rowChoice?.label ?? row.value}: ${(row.probability * 100).toFixed(1)} %` },
          h("span", { class: "bar-track" }, h("span", { class: "bar", style: { width: `${Math.round(row.probability * 1000) / 10}%`, background: rowChoice?.color ?? "#888" } })),
          h("span", { class: "bar-label small" }, rowChoice?.label ?? row.value),
          h("span", { class: "bar-value small muted" }, percent(row.probability)),
        );
      }),
    ),
    gateNote(prediction, schema),
  );
}
