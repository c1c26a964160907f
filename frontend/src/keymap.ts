// The workspace's keyboard map: one hotkey per choice from the label schema, and the app's own keys
// chosen so that they can never clash with a choice. Choice hotkeys are single lower-case letters or
// digits without modifiers (the server enforces that); every app key is a symbol, a named key, or
// carries Shift/Ctrl, with one exception: "0" resets the view only while no choice claims it
// (Shift+0 always does).
//
// The review page builds its own keymap from the same pieces (review.ts): the task's choices plus its
// own app bindings, under the same rules.

export type ChoiceAction = { kind: "choice"; value: string };

export type Action =
  | ChoiceAction
  | { kind: "confidence"; level: 1 | 2 | 3 | 4 | 5 }
  | { kind: "next" }
  | { kind: "prev" }
  | { kind: "undo" }
  | { kind: "zoomIn" }
  | { kind: "zoomOut" }
  | { kind: "resetView" }
  | { kind: "pan"; dx: number; dy: number }
  | { kind: "brightness"; delta: number }
  | { kind: "contrast"; delta: number }
  | { kind: "resetAdjust" }
  | { kind: "help" }
  | { kind: "close" }
  | { kind: "retry" }
  | { kind: "overlay" }
  | { kind: "opacity"; delta: number }
  | { kind: "keepMine" }
  | { kind: "takeServer" };

export interface SchemaChoice {
  value: string;
  label: string;
  hotkey: string;
  color: string;
  is_active: boolean;
}

/** The workspace's actions or another page's (the review page's), for the shared functions. */
type AnyAction = Action | { kind: string };

export type BindingGroup = "Label" | "Decide" | "Navigate" | "Lists" | "View" | "Other";

export interface Binding<A extends { kind: string } = Action> {
  keys: string[];
  action: A;
  description: string;
  group: BindingGroup;
}

export interface Keymap<A extends { kind: string } = Action> {
  /** descriptor (see describeKey) -> action */
  byKey: Map<string, A>;
  /** For the help overlay, in display order. */
  bindings: Binding<A>[];
  /** Choice value -> its hotkey ("" when it has none). */
  choiceKeys: Map<string, string>;
}

export class KeymapError extends Error {
  constructor(readonly problems: string[]) {
    super(`The label schema's hotkeys cannot be used: ${problems.join("; ")}`);
    this.name = "KeymapError";
  }
}

export const CONFIDENCE_NAMES: Record<1 | 2 | 3 | 4 | 5, string> = {
  1: "guess",
  2: "unsure",
  3: "fairly sure",
  4: "sure",
  5: "certain",
};

const PAN_STEP = 60;

/** The app's keys. A plain letter or digit here yields to a choice that claims it. */
export const APP_BINDINGS: readonly Binding[] = [
  ...([1, 2, 3, 4, 5] as const).map(
    (level): Binding => ({
      keys: [`Shift+${level}`],
      action: { kind: "confidence", level },
      description: `Confidence ${level} (${CONFIDENCE_NAMES[level]}); kept for the next frames`,
      group: "Label",
    }),
  ),
  { keys: ["Ctrl+z", "Meta+z", "Backspace"], action: { kind: "undo" }, description: "Undo the last label", group: "Label" },
  { keys: ["Shift+r"], action: { kind: "retry" }, description: "Retry failed saves", group: "Label" },
  { keys: ["ArrowRight", "PageDown"], action: { kind: "next" }, description: "Next frame (skip)", group: "Navigate" },
  { keys: ["ArrowLeft", "PageUp"], action: { kind: "prev" }, description: "Previous frame", group: "Navigate" },
  { keys: ["+", "="], action: { kind: "zoomIn" }, description: "Zoom in (or mouse wheel)", group: "View" },
  { keys: ["-", "_"], action: { kind: "zoomOut" }, description: "Zoom out", group: "View" },
  { keys: ["0", "Shift+0"], action: { kind: "resetView" }, description: "Fit the frame (reset zoom and pan)", group: "View" },
  { keys: ["Shift+ArrowLeft"], action: { kind: "pan", dx: PAN_STEP, dy: 0 }, description: "Pan left (or drag)", group: "View" },
  { keys: ["Shift+ArrowRight"], action: { kind: "pan", dx: -PAN_STEP, dy: 0 }, description: "Pan right", group: "View" },
  { keys: ["Shift+ArrowUp"], action: { kind: "pan", dx: 0, dy: PAN_STEP }, description: "Pan up", group: "View" },
  { keys: ["Shift+ArrowDown"], action: { kind: "pan", dx: 0, dy: -PAN_STEP }, description: "Pan down", group: "View" },
  { keys: ["["], action: { kind: "brightness", delta: -0.1 }, description: "Darker", group: "View" },
  { keys: ["]"], action: { kind: "brightness", delta: 0.1 }, description: "Brighter", group: "View" },
  { keys: ["{"], action: { kind: "contrast", delta: -0.1 }, description: "Less contrast", group: "View" },
  { keys: ["}"], action: { kind: "contrast", delta: 0.1 }, description: "More contrast", group: "View" },
  { keys: ["\\"], action: { kind: "resetAdjust" }, description: "Reset brightness and contrast", group: "View" },
  { keys: ["Shift+m"], action: { kind: "overlay" }, description: "Show or hide the model's CAM over the frame (where the project shows CAMs)", group: "View" },
  { keys: [","], action: { kind: "opacity", delta: -0.1 }, description: "CAM more transparent", group: "View" },
  { keys: ["."], action: { kind: "opacity", delta: 0.1 }, description: "CAM more opaque", group: "View" },
  { keys: ["Shift+k"], action: { kind: "keepMine" }, description: "In a conflict: keep your label", group: "Other" },
  { keys: ["Shift+t"], action: { kind: "takeServer" }, description: "In a conflict: take the server's label", group: "Other" },
  { keys: ["?"], action: { kind: "help" }, description: "Show or hide this help", group: "Other" },
  { keys: ["Escape"], action: { kind: "close" }, description: "Close the help", group: "Other" },
];

const CHOICE_KEY = /^[a-z0-9]$/;

export interface KeyLike {
  key: string;
  code: string;
  shiftKey: boolean;
  ctrlKey: boolean;
  altKey: boolean;
  metaKey: boolean;
}

/**
 * A layout-tolerant name for a key press: "h", "4", "Shift+4", "Ctrl+z", "ArrowRight", "?", "[".
 * Letters come from `key` (the user's layout); digits from `code` so that Shift+digit is the same on
 * every layout (US Shift+1 types "!", AZERTY types "1" only with Shift). A printed symbol already
 * carries its Shift, so only letters, digits and named keys get a "Shift+" prefix.
 */
export function describeKey(event: KeyLike): string {
  const mods = `${event.ctrlKey ? "Ctrl+" : ""}${event.altKey ? "Alt+" : ""}${event.metaKey ? "Meta+" : ""}`;
  const digit = /^Digit([0-9])$/.exec(event.code);
  if (digit) return `${mods}${event.shiftKey ? "Shift+" : ""}${digit[1]}`;
  if (event.key.length === 1 && /[a-z]/i.test(event.key)) {
    return `${mods}${event.shiftKey ? "Shift+" : ""}${event.key.toLowerCase()}`;
  }
  if (event.key.length === 1) return `${mods}${event.key}`;
  return `${mods}${event.shiftKey ? "Shift+" : ""}${event.key}`;
}

/**
 * The keymap of one task's active choices. Refuses (KeymapError) a hotkey that is not one lower-case
 * letter or digit, or one that two choices share; a choice without a hotkey is still offered by
 * mouse. An app key that is a plain letter or digit gives way to a choice that claims it. The app's
 * keys are the workspace's (APP_BINDINGS) unless others are given (the review page's); the choices'
 * keys go in `choiceGroup` of the help.
 */
export function buildKeymap(choices: readonly SchemaChoice[]): Keymap;
export function buildKeymap<A extends { kind: string }>(
  choices: readonly SchemaChoice[],
  appBindings: readonly Binding<A>[],
  choiceGroup?: BindingGroup,
): Keymap<A | ChoiceAction>;
export function buildKeymap(
  choices: readonly SchemaChoice[],
  appBindings: readonly Binding<AnyAction>[] = APP_BINDINGS,
  choiceGroup: BindingGroup = "Label",
): Keymap<AnyAction> {
  const problems: string[] = [];
  const byKey = new Map<string, AnyAction>();
  const choiceKeys = new Map<string, string>();
  const owner = new Map<string, string>();
  const bindings: Binding<AnyAction>[] = [];
  for (const choice of choices) {
    if (!choice.is_active) continue;
    const key = choice.hotkey;
    choiceKeys.set(choice.value, key);
    if (key === "") continue;
    if (!CHOICE_KEY.test(key)) {
      problems.push(`"${choice.label}" has hotkey "${key}", but a hotkey is one lower-case letter or digit`);
      continue;
    }
    const previous = owner.get(key);
    if (previous !== undefined) {
      problems.push(`"${key}" is the hotkey of both "${previous}" and "${choice.label}"`);
      continue;
    }
    owner.set(key, choice.label);
    byKey.set(key, { kind: "choice", value: choice.value });
    bindings.push({ keys: [key], action: { kind: "choice", value: choice.value }, description: choice.label, group: choiceGroup });
  }
  if (problems.length > 0) throw new KeymapError(problems);
  for (const binding of appBindings) {
    const keys = binding.keys.filter((key) => !byKey.has(key));
    if (keys.length === 0) {
      // Cannot happen with APP_BINDINGS as written (every action has a key no choice can take), but a
      // future edit must not silently lose an action.
      throw new KeymapError([`the app's "${binding.description}" has no key left`]);
    }
    for (const key of keys) byKey.set(key, binding.action);
    bindings.push({ ...binding, keys });
  }
  return { byKey, bindings, choiceKeys };
}

/** Whether holding the key down may repeat the action: never for anything that writes a label (or a
 * decision), nor for toggles and switches. */
export function repeatable<A extends { kind: string }>(action: A): boolean {
  return ![
    "choice",
    "confidence",
    "undo",
    "retry",
    "keepMine",
    "takeServer",
    "help",
    "overlay",
    "rationale",
    "status",
  ].includes(action.kind);
}
