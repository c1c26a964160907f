import { describe, expect, it } from "vitest";
import {
  MISSING,
  defaultPositive,
  errorMessages,
  exactInteger,
  withExactInteger,
  formatDuration,
  formatEstimate,
  formatNumber,
  formatP,
  formatProportion,
  formatRate,
  sessionProgress,
  sessionState,
} from "./studyformat";

describe("numbers and intervals", () => {
  it("writes an estimate with its interval", () => {
    expect(formatEstimate(0.8213, 0.7071, 0.8999)).toBe("0.82 (0.71–0.90)");
    expect(formatEstimate(0.75, 0.2600090038649865, 1.2399909961350135)).toBe("0.75 (0.26–1.24)");
    expect(formatEstimate(0.25, -2.92655, 3.42655, 3)).toBe("0.250 (-2.927–3.427)");
  });

  it("drops a missing interval and dashes a missing estimate", () => {
    expect(formatEstimate(0.5, null, null)).toBe("0.50");
    expect(formatEstimate(null, 0.1, 0.2)).toBe(MISSING);
    expect(formatEstimate(Number.NaN, 0.1, 0.2)).toBe(MISSING);
    expect(formatNumber(undefined)).toBe(MISSING);
  });

  it("never writes a negative zero", () => {
    expect(formatNumber(-0.0001)).toBe("0.00");
    expect(formatNumber(-0.004, 3)).toBe("-0.004");
  });

  it("writes a proportion with its counts, or its reason", () => {
    const threeOfFour = { value: 0.75, ci_low: 0.30064184258240184, ci_high: 0.9544127391902995, numerator: 3, denominator: 4, reason: "" };
    expect(formatProportion(threeOfFour)).toEqual({ text: "0.75 (0.30–0.95)", counts: "3/4", reason: "" });
    const none = { value: null, ci_low: null, ci_high: null, numerator: 0, denominator: 0, reason: "No reference-positive cases." };
    expect(formatProportion(none)).toEqual({ text: MISSING, counts: "0/0", reason: "No reference-positive cases." });
    expect(formatProportion(undefined).reason).toBe("Not computed.");
  });

  it("writes p-values, durations and rates", () => {
    expect(formatP(0.03512)).toBe("0.035");
    expect(formatP(0.0004)).toBe("< 0.001");
    expect(formatP(null)).toBe(MISSING);
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(12_345)).toBe("12.3 s");
    expect(formatDuration(150_000)).toBe("2.5 min");
    expect(formatRate(0.25)).toBe("25 %");
    expect(formatRate(null)).toBe(MISSING);
  });
});

describe("the default positive class", () => {
  it("takes a choice that names the condition", () => {
    expect(defaultPositive(["healthy", "neoplastic", "unclear"])).toBe("neoplastic");
    expect(defaultPositive(["benign", "malignant"])).toBe("malignant");
  });

  it("else the second of two choices, else none (multi-class)", () => {
    expect(defaultPositive(["good", "poor"])).toBe("poor");
    expect(defaultPositive(["a", "b", "c"])).toBeNull();
    expect(defaultPositive([])).toBeNull();
  });
});

describe("the API's refusals", () => {
  it("names the field of every message", () => {
    expect(errorMessages({ name: ["This field may not be blank."], washout_days: ["Too many."] })).toEqual([
      "name: This field may not be blank.",
      "washout_days: Too many.",
    ]);
  });

  it("leaves detail and non-field errors unnamed", () => {
    expect(errorMessages({ detail: "A fully crossed study has no periods, so no washout." })).toEqual([
      "A fully crossed study has no periods, so no washout.",
    ]);
    expect(errorMessages({ non_field_errors: ["Nope."] })).toEqual(["Nope."]);
  });

  it("numbers the items of a nested list from 1", () => {
    expect(errorMessages({ arms: [{}, { name: ["This field is required."] }] })).toEqual(["arms.2.name: This field is required."]);
    expect(errorMessages(null)).toEqual([]);
    expect(errorMessages("Server error")).toEqual(["Server error"]);
  });
});

describe("reading sessions", () => {
  const base = { available: true, unavailable_reason: "", available_from: null, completed_at: null, started_at: null, case_count: 10 };

  it("says whether the reader may read now", () => {
    expect(sessionState(base)).toEqual({ state: "available", text: "Not started" });
    expect(sessionState({ ...base, started_at: "2026-01-01T10:00:00Z" })).toEqual({ state: "available", text: "In progress" });
    expect(sessionState({ ...base, completed_at: "2026-01-01T10:00:00Z" })).toEqual({ state: "completed", text: "Completed" });
  });

  it("gives the reason and the date a waiting session opens", () => {
    const waiting = { ...base, available: false, unavailable_reason: "Washout until the date below.", available_from: "2026-03-01T09:00:00Z" };
    const state = sessionState(waiting, "en-GB");
    expect(state.state).toBe("waiting");
    expect(state.text).toMatch(/^Washout until the date below\. Available from 1 Mar 2026/);
    expect(sessionState({ ...base, available: false, unavailable_reason: "Finish period 1 first." }).text).toBe("Finish period 1 first.");
  });

  it("counts the cases answered", () => {
    expect(sessionProgress(base)).toBe("0 / 10 cases");
    expect(sessionProgress({ ...base, started_at: "x", current_position: 3 })).toBe("3 / 10 cases");
    expect(sessionProgress({ ...base, completed_at: "x", current_position: null })).toBe("10 / 10 cases");
  });
});

describe("exact integers", () => {
  it("reads an integer beyond 2^53 as the server wrote it", () => {
    const text = '{"id": 4, "seed": 4611686018427387903, "washout_days": 0}';
    expect(String(JSON.parse(text).seed)).not.toBe("4611686018427387903"); // what JSON.parse makes of it
    expect(exactInteger(text, "seed")).toBe("4611686018427387903");
    expect(exactInteger('{"seed":12}', "seed")).toBe("12");
  });

  it("refuses a number that is not an integer, and a missing field", () => {
    expect(exactInteger('{"seed": 1.5}', "seed")).toBeNull();
    expect(exactInteger('{"seeds": 1}', "seed")).toBeNull();
  });
});

describe("writing an exact integer", () => {
  it("adds the field as written, beyond what a number holds", () => {
    const json = JSON.stringify({ project: 3, name: "S" });
    const body = withExactInteger(json, "seed", "4611686018427387903");
    expect(body).toBe('{"project":3,"name":"S","seed":4611686018427387903}');
    expect(exactInteger(body, "seed")).toBe("4611686018427387903");
    expect(withExactInteger("{}", "seed", "7")).toBe('{"seed":7}');
  });

  it("refuses what is not a whole number", () => {
    expect(() => withExactInteger("{}", "seed", "1e5")).toThrow(/whole number/);
    expect(() => withExactInteger("{}", "seed", "3,4")).toThrow(/whole number/);
    expect(() => withExactInteger("[]", "seed", "3")).toThrow(/JSON object/);
  });
});
