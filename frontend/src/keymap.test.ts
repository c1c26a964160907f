import { describe, expect, it } from "vitest";
import { APP_BINDINGS, buildKeymap, describeKey, KeymapError, repeatable, type KeyLike, type SchemaChoice } from "./keymap";

const choice = (value: string, hotkey: string, is_active = true): SchemaChoice => ({
  value,
  label: value[0]!.toUpperCase() + value.slice(1),
  hotkey,
  color: "#123456",
  is_active,
});

const key = (k: string, code: string, mods: Partial<KeyLike> = {}): KeyLike => ({
  key: k,
  code,
  shiftKey: false,
  ctrlKey: false,
  altKey: false,
  metaKey: false,
  ...mods,
});

describe("describeKey", () => {
  it("names letters by the layout's key, lower-cased, with Shift when held", () => {
    expect(describeKey(key("h", "KeyH"))).toBe("h");
    expect(describeKey(key("H", "KeyH", { shiftKey: true }))).toBe("Shift+h");
    expect(describeKey(key("z", "KeyZ", { ctrlKey: true }))).toBe("Ctrl+z");
  });

  it("names digits by their physical key, so Shift+1 is the same on every layout", () => {
    expect(describeKey(key("1", "Digit1"))).toBe("1");
    expect(describeKey(key("!", "Digit1", { shiftKey: true }))).toBe("Shift+1");
    expect(describeKey(key("&", "Digit1"))).toBe("1"); // AZERTY without Shift
    expect(describeKey(key("3", "Numpad3"))).toBe("3");
  });

  it("keeps printed symbols as typed and prefixes Shift only on named keys", () => {
    expect(describeKey(key("?", "Slash", { shiftKey: true }))).toBe("?");
    expect(describeKey(key("{", "BracketLeft", { shiftKey: true }))).toBe("{");
    expect(describeKey(key("ArrowRight", "ArrowRight"))).toBe("ArrowRight");
    expect(describeKey(key("ArrowLeft", "ArrowLeft", { shiftKey: true }))).toBe("Shift+ArrowLeft");
  });
});

describe("buildKeymap", () => {
  it("maps each active choice's hotkey to that choice and skips inactive ones", () => {
    const map = buildKeymap([choice("healthy", "h"), choice("neoplastic", "n"), choice("old", "o", false)]);
    expect(map.byKey.get("h")).toEqual({ kind: "choice", value: "healthy" });
    expect(map.byKey.get("n")).toEqual({ kind: "choice", value: "neoplastic" });
    expect(map.byKey.has("o")).toBe(false);
    expect(map.choiceKeys.get("healthy")).toBe("h");
  });

  it("offers a choice without a hotkey by mouse only", () => {
    const map = buildKeymap([choice("other", "")]);
    expect(map.choiceKeys.get("other")).toBe("");
    expect([...map.byKey.values()].some((action) => action.kind === "choice")).toBe(false);
  });

  it("refuses two choices with the same hotkey", () => {
    expect(() => buildKeymap([choice("ear", "e"), choice("eye", "e")])).toThrow(KeymapError);
    try {
      buildKeymap([choice("ear", "e"), choice("eye", "e")]);
    } catch (error) {
      expect((error as KeymapError).problems).toEqual(['"e" is the hotkey of both "Ear" and "Eye"']);
    }
  });

  it("refuses a hotkey that is not one lower-case letter or digit", () => {
    expect(() => buildKeymap([choice("bad", "H")])).toThrow(/one lower-case letter or digit/);
    expect(() => buildKeymap([choice("bad", "?")])).toThrow(KeymapError);
    expect(() => buildKeymap([choice("bad", "ab")])).toThrow(KeymapError);
  });

  it("gives confidence its own keys that no choice can take, even digit choices", () => {
    const map = buildKeymap([1, 2, 3, 4, 5].map((n) => choice(`grade${n}`, String(n))));
    for (const n of [1, 2, 3, 4, 5]) {
      expect(map.byKey.get(String(n))).toEqual({ kind: "choice", value: `grade${n}` });
      expect(map.byKey.get(`Shift+${n}`)).toEqual({ kind: "confidence", level: n });
    }
  });

  it("lets a choice claim 0, leaving Shift+0 to reset the view", () => {
    const without = buildKeymap([choice("a", "a")]);
    expect(without.byKey.get("0")).toEqual({ kind: "resetView" });
    const withZero = buildKeymap([choice("zero", "0")]);
    expect(withZero.byKey.get("0")).toEqual({ kind: "choice", value: "zero" });
    expect(withZero.byKey.get("Shift+0")).toEqual({ kind: "resetView" });
    const reset = withZero.bindings.find((binding) => binding.action.kind === "resetView");
    expect(reset?.keys).toEqual(["Shift+0"]);
  });

  it("uses no plain letter for an app key, so every letter stays free for choices", () => {
    for (const binding of APP_BINDINGS) {
      for (const k of binding.keys) expect(/^[a-z]$/.test(k)).toBe(false);
    }
    const letters = "abcdefghijklmnopqrstuvwxyz".split("").map((l) => choice(`c${l}`, l));
    const map = buildKeymap(letters);
    expect(map.byKey.get("z")).toEqual({ kind: "choice", value: "cz" });
    expect(map.byKey.get("Ctrl+z")).toEqual({ kind: "undo" });
  });

  it("never repeats a labelling action while a key is held", () => {
    expect(repeatable({ kind: "choice", value: "x" })).toBe(false);
    expect(repeatable({ kind: "undo" })).toBe(false);
    expect(repeatable({ kind: "confidence", level: 2 })).toBe(false);
    expect(repeatable({ kind: "next" })).toBe(true);
    expect(repeatable({ kind: "zoomIn" })).toBe(true);
  });
});
