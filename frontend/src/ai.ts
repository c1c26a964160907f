// Model output beside the frame, the pure side: what the server sends (predictions, the gate's
// decision), how a CAM becomes coloured pixels over the frame, and how long the reader was exposed
// to it. The DOM side is aiview.ts (the workspace's model panel and the CAM canvas, also used by the
// upload-and-classify page).
//
// Blinding is the server's: the label context carries predictions only where the project lets the
// caller see them, and the annotations API refuses exposure the caller could not have had. The page
// only mirrors it (it shows nothing it was not given) and measures what it showed.

/** What model output the caller may see in a project (inference.selectors.ai_visibility). */
export interface AiVisibility {
  prediction: boolean;
  cam: boolean;
}

export const AI_HIDDEN: AiVisibility = { prediction: false, cam: false };

export interface Probability {
  value: string;
  probability: number;
}

/** The gate task's prediction a gated task's decision was made on. */
export interface GateDecision {
  task_key: string;
  predicted_value: string;
  confidence: number | null;
  model_version: number;
  model_version_name: string;
  diagnostic_values: string[];
}

/** A row of /api/frames/{id}/predictions/ (and of the label context, and of /predict/). */
export interface Prediction {
  id: number;
  frame: number;
  task: number;
  task_key: string;
  model_version: number;
  model_version_name: string;
  /** "" when the gate judged the frame not diagnostic. */
  predicted_value: string;
  /** null when gated out. */
  confidence: number | null;
  /** Empty when gated out. */
  probabilities: Probability[];
  /** null where CAMs are hidden from the caller, or none was made. */
  cam_url: string | null;
  created_at?: string;
  /** The gate's decision; null (or absent) for a task without a gate. */
  gate_passed?: boolean | null;
  gate?: GateDecision | null;
}

/** The answer of POST /api/projects/{id}/classify/ (an uploaded image, nothing stored). */
export interface ClassifyResult {
  task_key: string;
  model_version: number;
  model_version_name: string;
  predicted_value: string;
  confidence: number | null;
  probabilities: Probability[];
  cam_png_base64: string | null;
  gate_passed: boolean | null;
  gate: GateDecision | null;
  width: number;
  height: number;
  elapsed_ms: number;
}

/** "87 %", "0.4 %", "100 %": whole percent above 10, one decimal below. */
export function percent(probability: number): string {
  const value = probability * 100;
  if (value >= 10 || value === 0) return `${Math.round(value)} %`;
  return `${value.toFixed(1)} %`;
}

/** The probabilities, most probable first (the distribution as the panel lists it). */
export function ranked(probabilities: readonly Probability[]): Probability[] {
  return [...probabilities].sort((a, b) => b.probability - a.probability);
}

/** "Not diagnostic (quality: bad 0.91)" for a frame the gate kept from the model, else null. */
export function gateRefusal(prediction: Pick<Prediction, "gate_passed" | "gate">, labelOf?: (task: string, value: string) => string): string | null {
  if (prediction.gate_passed !== false) return null;
  const gate = prediction.gate;
  if (!gate) return "Not diagnostic";
  const value = labelOf ? labelOf(gate.task_key, gate.predicted_value) : gate.predicted_value;
  const confidence = gate.confidence === null ? "" : ` ${gate.confidence.toFixed(2)}`;
  return `Not diagnostic (${gate.task_key}: ${value}${confidence})`;
}

/** Tasks the frame has an active model for but no stored prediction of: to be predicted on demand. */
export function missingTasks(predictions: readonly Prediction[], activeTasks: readonly string[]): string[] {
  const have = new Set(predictions.map((prediction) => prediction.task_key));
  return activeTasks.filter((task) => !have.has(task));
}

// --- CAM colouring -----------------------------------------------------------------------------------

// Viridis (perceptually uniform, readable with colour-blindness, dark where the model looked least):
// nine anchors of matplotlib's table, linearly interpolated to 256 entries.
const VIRIDIS_ANCHORS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** 256 RGB triples (768 bytes): the colour of each CAM value 0..255. */
export function buildColormap(anchors: readonly (readonly [number, number, number])[] = VIRIDIS_ANCHORS): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 3);
  const segments = anchors.length - 1;
  for (let value = 0; value < 256; value++) {
    const position = (value / 255) * segments;
    const index = Math.min(segments - 1, Math.floor(position));
    const t = position - index;
    const from = anchors[index]!;
    const to = anchors[index + 1]!;
    for (let channel = 0; channel < 3; channel++) {
      lut[value * 3 + channel] = Math.round(from[channel]! + (to[channel]! - from[channel]!) * t);
    }
  }
  return lut;
}

export const COLORMAP = buildColormap();

/** Opacity as the slider shows it (0..100 %) and stores it (0..1). */
export function clampOpacity(value: number): number {
  if (!Number.isFinite(value)) return 0.5;
  return Math.round(Math.min(1, Math.max(0, value)) * 100) / 100;
}

/**
 * Colour a CAM for drawing over the frame. `cam` is RGBA as a canvas reads the grayscale PNG (the
 * value is in R); `out` gets RGBA of the same size. Each pixel takes the colormap's colour of its
 * value and the alpha `opacity × value`: where the model did not look (0, also outside the crop box)
 * the frame shows untouched, and the hottest region is covered by `opacity`. The canvas then draws
 * these pixels over the frame with ordinary alpha compositing (source-over).
 */
export function colorizeCam(cam: Uint8ClampedArray, opacity: number, out: Uint8ClampedArray, lut: Uint8ClampedArray = COLORMAP): void {
  if (out.length !== cam.length) throw new Error("The CAM and the output differ in size.");
  const alpha = clampOpacity(opacity);
  for (let i = 0; i < cam.length; i += 4) {
    const value = cam[i]!;
    out[i] = lut[value * 3]!;
    out[i + 1] = lut[value * 3 + 1]!;
    out[i + 2] = lut[value * 3 + 2]!;
    out[i + 3] = Math.round(alpha * value);
  }
}

/** What the screen shows for one pixel: `over` (RGBA, straight alpha) composited on the frame's RGB. */
export function compositeOver(base: readonly [number, number, number], over: readonly [number, number, number, number]): [number, number, number] {
  const a = over[3] / 255;
  return [0, 1, 2].map((c) => Math.round(over[c]! * a + base[c]! * (1 - a))) as [number, number, number];
}

// --- Exposure ----------------------------------------------------------------------------------------

export interface Exposure {
  /** The prediction panel (or the CAM) was shown with this frame. */
  aiShown: boolean;
  /** Milliseconds the CAM was on screen for this frame (tab visible, opacity above 0). */
  camVisibleMs: number;
}

/** The annotations API's ceiling for cam_visible_ms (a day). */
const MAX_MS = 86_400_000;

/**
 * Per frame, whether model output was shown and how long the CAM was on screen, accumulated over
 * every visit of the frame in this page. The page tells it what is on screen whenever that changes
 * (`camOnScreen(frame)` with the frame whose CAM is visible now, or null); the clock is injected so
 * that the tests can drive it.
 */
export class ExposureTracker {
  private readonly frames = new Map<number, Exposure>();
  private running: { frame: number; since: number } | null = null;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** The prediction panel showed model output for the frame. */
  predictionShown(frame: number): void {
    this.entry(frame).aiShown = true;
  }

  /** From now on the CAM is on screen for `frame` (null: for no frame). */
  camOnScreen(frame: number | null): void {
    if (this.running?.frame === frame) return;
    const now = this.now();
    if (this.running) this.add(this.running.frame, now - this.running.since);
    this.running = frame === null ? null : { frame, since: now };
    if (frame !== null) this.entry(frame).aiShown = true;
  }

  /** The exposure to send with a label of the frame given now. */
  of(frame: number): Exposure {
    const stored = this.frames.get(frame) ?? { aiShown: false, camVisibleMs: 0 };
    let ms = stored.camVisibleMs;
    if (this.running?.frame === frame) ms += this.now() - this.running.since;
    const camVisibleMs = Math.min(MAX_MS, Math.max(0, Math.round(ms)));
    return { aiShown: stored.aiShown || camVisibleMs > 0, camVisibleMs };
  }

  /** Whether the CAM is being timed for the frame now. */
  timing(frame: number): boolean {
    return this.running?.frame === frame;
  }

  private add(frame: number, ms: number): void {
    const entry = this.entry(frame);
    entry.camVisibleMs += Math.max(0, ms);
  }

  private entry(frame: number): Exposure {
    let entry = this.frames.get(frame);
    if (!entry) {
      entry = { aiShown: false, camVisibleMs: 0 };
      this.frames.set(frame, entry);
    }
    return entry;
  }
}
