import { describe, expect, it } from "vitest";
import type { Prediction } from "./ai";
import {
  aiShownIn,
  availableText,
  canAnswer,
  casePhase,
  Drafts,
  editablePhase,
  nextSession,
  predictionsOfFrame,
  ReadingTimer,
  type Arm,
  type CaseQuestion,
  type Reading,
  type SessionInfo,
} from "./reading";

const DIAGNOSIS: CaseQuestion = {
  key: "diagnosis",
  name: "Diagnosis",
  ask_confidence: true,
  choices: [
    { value: "healthy", label: "Healthy", color: "#0a0", hotkey: "h" },
    { value: "neoplastic", label: "Neoplastic", color: "#a00", hotkey: "n" },
  ],
};
const QUALITY: CaseQuestion = {
  key: "quality",
  name: "Quality",
  ask_confidence: false,
  choices: [
    { value: "good", label: "Good", color: "#0a0", hotkey: "g" },
    { value: "bad", label: "Bad", color: "#a00", hotkey: "b" },
  ],
};
const UNAIDED: Arm = { id: 1, name: "Unaided", assistance: "unaided", sequential: false };
const AIDED: Arm = { id: 2, name: "AI", assistance: "prediction", sequential: false };
const SEQUENTIAL: Arm = { id: 3, name: "Sequential", assistance: "prediction_and_cam", sequential: true };

function reading(question: string, phase: "first" | "revised", value: string, confidence: number | null = 3): Reading {
  return { id: 1, case: 1, question, phase, value, confidence, time_ms: 1000, ai_shown: false, cam_visible_ms: 0, version: 1, updated_at: "" };
}

function view(arm: Arm, readings: Reading[], allow_answer_changes = false) {
  return { arm, readings, questions: [DIAGNOSIS, QUALITY], allow_answer_changes };
}

describe("casePhase", () => {
  it("asks for the first answers until every question has one", () => {
    expect(casePhase(view(UNAIDED, []))).toBe("first");
    expect(casePhase(view(UNAIDED, [reading("diagnosis", "first", "healthy")]))).toBe("first");
    expect(casePhase(view(UNAIDED, [reading("diagnosis", "first", "healthy"), reading("quality", "first", "good", null)]))).toBe("done");
  });

  it("asks a sequential arm for the revised answers after the first ones", () => {
    const firsts = [reading("diagnosis", "first", "healthy"), reading("quality", "first", "good", null)];
    expect(casePhase(view(SEQUENTIAL, firsts))).toBe("revised");
    expect(casePhase(view(SEQUENTIAL, [...firsts, reading("diagnosis", "revised", "neoplastic")]))).toBe("revised");
    expect(casePhase(view(SEQUENTIAL, [...firsts, reading("diagnosis", "revised", "neoplastic"), reading("quality", "revised", "good", null)]))).toBe("done");
  });
});

describe("canAnswer and editablePhase", () => {
  const done = [reading("diagnosis", "first", "healthy"), reading("quality", "first", "good", null)];

  it("lets an answered case be changed only where the study allows it", () => {
    expect(canAnswer(view(UNAIDED, done), "first")).toBe(false);
    expect(canAnswer(view(UNAIDED, done, true), "first")).toBe(true);
    expect(editablePhase(view(UNAIDED, done))).toBe("first");
  });

  it("never lets a sequential arm's first answer change once given, nor a revised one come first", () => {
    expect(canAnswer(view(SEQUENTIAL, [], true), "revised")).toBe(false);
    expect(canAnswer(view(SEQUENTIAL, done, true), "first")).toBe(false);
    expect(canAnswer(view(SEQUENTIAL, done, true), "revised")).toBe(true);
    expect(editablePhase(view(SEQUENTIAL, done))).toBe("revised");
  });
});

describe("aiShownIn", () => {
  it("shows the AI in aided arms, in a sequential arm only with the revised answer", () => {
    expect(aiShownIn(UNAIDED, "first")).toBe(false);
    expect(aiShownIn(AIDED, "first")).toBe(true);
    expect(aiShownIn(SEQUENTIAL, "first")).toBe(false);
    expect(aiShownIn(SEQUENTIAL, "revised")).toBe(true);
  });
});

describe("Drafts", () => {
  it("needs a value for every question and a confidence where one is asked", () => {
    const drafts = new Drafts([DIAGNOSIS, QUALITY], new Map());
    expect(drafts.firstIncomplete()).toBe(DIAGNOSIS);
    drafts.choose("diagnosis", "neoplastic");
    expect(drafts.missing()).toEqual(["your confidence in “Diagnosis”", "an answer to “Quality”"]);
    drafts.rate("diagnosis", 4);
    expect(drafts.firstIncomplete()).toBe(QUALITY);
    expect(drafts.answers("first", 10, { aiShown: false, camVisibleMs: 0 })).toBeNull();
    drafts.rate("quality", 5); // not asked: ignored
    drafts.choose("quality", "good");
    expect(drafts.answers("first", 1234.4, { aiShown: false, camVisibleMs: 0 })).toEqual([
      { question: "diagnosis", phase: "first", value: "neoplastic", confidence: 4, time_ms: 1234, ai_shown: false, cam_visible_ms: 0 },
      { question: "quality", phase: "first", value: "good", confidence: null, time_ms: 1234, ai_shown: false, cam_visible_ms: 0 },
    ]);
  });

  it("ignores values that are not choices and confidences outside 1 to 5", () => {
    const drafts = new Drafts([DIAGNOSIS], new Map());
    drafts.choose("diagnosis", "inflamed");
    drafts.rate("diagnosis", 6);
    drafts.rate("diagnosis", 0);
    expect(drafts.get("diagnosis")).toEqual({ value: null, confidence: null });
  });

  it("starts a revised answer from the first one and sends CAM time only with the AI shown", () => {
    const drafts = new Drafts([DIAGNOSIS], new Map([["diagnosis", { value: "healthy", confidence: 2 }]]));
    expect(drafts.answers("revised", 500, { aiShown: true, camVisibleMs: 321.6 })).toEqual([
      { question: "diagnosis", phase: "revised", value: "healthy", confidence: 2, time_ms: 500, ai_shown: true, cam_visible_ms: 322 },
    ]);
    expect(drafts.answers("first", 500, { aiShown: false, camVisibleMs: 99 })![0]!.cam_visible_ms).toBe(0);
  });
});

describe("ReadingTimer", () => {
  it("counts the time between signs of the reader and leaves out idle gaps", () => {
    let now = 1000;
    const timer = new ReadingTimer(() => now, 60_000);
    now = 6000;
    timer.activity();
    expect(timer.elapsed()).toBe(5000);
    now = 6000 + 90_000; // away for a minute and a half
    expect(timer.elapsed()).toBe(5000);
    timer.activity();
    now += 2000;
    expect(timer.elapsed()).toBe(7000);
  });

  it("stops while the tab is hidden", () => {
    let now = 0;
    const timer = new ReadingTimer(() => now, 60_000);
    now = 3000;
    timer.hidden(true);
    now = 50_000;
    expect(timer.elapsed()).toBe(3000);
    timer.activity(); // ignored while hidden
    timer.hidden(false);
    now = 51_000;
    expect(timer.elapsed()).toBe(4000);
  });
});

describe("predictionsOfFrame", () => {
  it("keeps the frame's predictions in question order", () => {
    const base = { task: 1, model_version: 1, model_version_name: "m", confidence: 0.9, probabilities: [], cam_url: null };
    const rows = [
      { ...base, id: 1, frame: 7, task_key: "quality", predicted_value: "good" },
      { ...base, id: 2, frame: 8, task_key: "diagnosis", predicted_value: "healthy" },
      { ...base, id: 3, frame: 7, task_key: "diagnosis", predicted_value: "neoplastic" },
    ] as Prediction[];
    expect(predictionsOfFrame(rows, 7, [DIAGNOSIS, QUALITY]).map((row) => row.id)).toEqual([3, 1]);
  });
});

describe("sessions", () => {
  const session = (id: number, period: number, extra: Partial<SessionInfo> = {}): SessionInfo => ({
    id,
    study: 5,
    study_name: "S",
    reader: 1,
    reader_username: "r",
    arm: UNAIDED,
    period,
    case_count: 4,
    started_at: null,
    completed_at: null,
    available: true,
    unavailable_reason: "",
    available_from: null,
    current_position: 0,
    ...extra,
  });

  it("finds the next period's session of the same study", () => {
    const first = session(1, 1, { completed_at: "2026-12-01T10:00:00Z" });
    const second = session(2, 2);
    const other = { ...session(3, 2), study: 6 };
    expect(nextSession([other, second, first], first)).toBe(second);
    expect(nextSession([first], first)).toBeNull();
  });

  it("says when a washout ends", () => {
    const waiting = session(2, 2, { available: false, unavailable_reason: "Washout: …", available_from: "2026-12-15T10:00:00Z" });
    expect(availableText(waiting, "en-GB")).toMatch(/^Washout: this period opens on 15 December 2026/);
    expect(availableText(session(2, 2, { available: false, unavailable_reason: "Finish period 1 first." }))).toBe("Finish period 1 first.");
    expect(availableText(session(2, 2))).toBe("Available now.");
  });
});
