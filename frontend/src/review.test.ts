import { describe, expect, it } from "vitest";
import { buildKeymap, describeKey, KeymapError, repeatable, type KeyLike, type SchemaChoice } from "./keymap";
import { FrameList, type QueueFrame } from "./queue";
import {
  ADJUDICATION_CODEC,
  asQueuePage,
  canAdjudicate,
  goneFromList,
  parseAdjudication,
  REVIEW_BINDINGS,
  ReviewCounts,
  sameDecision,
  tally,
  type AdjudicationRecord,
  type Decision,
  type ReviewAnnotation,
  type ReviewItem,
  type ReviewPage,
  type ServerDecision,
} from "./review";
import { NetworkError, SaveManager, type HttpAnswer, type Transport } from "./saves";

const frame = (id: number): QueueFrame => ({
  id,
  examination: 1,
  video: null,
  index_in_video: id,
  time_s: null,
  width: 8,
  height: 6,
  mode: "L",
  image_url: `/api/frames/${id}/image/`,
  preview_url: `/api/frames/${id}/preview/`,
  examination_site: "larynx",
  examination_device: "pCLE",
});

const annotation = (id: number, username: string, value: string, confidence = 3): ReviewAnnotation => ({
  id,
  annotator: id,
  annotator_username: username,
  value,
  confidence,
  version: 1,
  ai_shown: false,
  updated_at: "2026-01-01T00:00:00Z",
});

const adjudication = (frameId: number, value: string, version = 1, rationale = ""): AdjudicationRecord => ({
  id: frameId,
  frame: frameId,
  task: 1,
  value,
  rationale,
  adjudicated_by: 9,
  adjudicated_by_username: "rev",
  version,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-02T00:00:00Z",
});

const item = (id: number, adjudicated: AdjudicationRecord | null = null, disagreement = true): ReviewItem => ({
  frame: frame(id),
  annotations: [annotation(1, "r1", "healthy"), annotation(2, "r2", "neoplastic")],
  adjudication: adjudicated,
  disagreement,
});

const page = (items: ReviewItem[], open: number, adjudicated: number): ReviewPage => ({ task: 1, open, adjudicated, items });

describe("who reviews", () => {
  it("reviewers, coordinators and admins (a superuser's role is admin); nobody else", () => {
    for (const role of ["reviewer", "coordinator", "admin"]) expect(canAdjudicate(role)).toBe(true);
    for (const role of ["reader", "data_manager", "", null, undefined]) expect(canAdjudicate(role)).toBe(false);
  });
});

describe("adjudications in the save manager", () => {
  it("reads the server's adjudication (value, rationale, who, version) and nothing else", () => {
    expect(parseAdjudication(adjudication(4, "healthy", 2, "basal cells"))).toEqual({
      value: "healthy",
      rationale: "basal cells",
      version: 2,
      adjudicatedBy: "rev",
      updatedAt: "2026-01-02T00:00:00Z",
    });
    expect(parseAdjudication(null)).toBeNull();
    expect(parseAdjudication({ detail: "nope" })).toBeNull();
    expect(ADJUDICATION_CODEC.body({ value: "healthy", rationale: "why" }, 1234)).toEqual({ value: "healthy", rationale: "why" });
  });

  it("compares decisions by value and rationale", () => {
    expect(sameDecision({ value: "a", rationale: "" }, { value: "a", rationale: "" })).toBe(true);
    expect(sameDecision({ value: "a", rationale: "" }, { value: "a", rationale: "x" })).toBe(false);
    expect(sameDecision(null, undefined)).toBe(true);
    expect(sameDecision(null, { value: "a", rationale: "" })).toBe(false);
  });

  function server(answers: (HttpAnswer | NetworkError)[]) {
    const calls: { body: Record<string, unknown>; headers: Record<string, string> }[] = [];
    const transport: Transport = {
      put: (_frame, body, headers) => {
        calls.push({ body, headers: { ...headers } });
        const answer = answers.shift();
        if (answer === undefined) throw new Error("no scripted answer left");
        return answer instanceof NetworkError ? Promise.reject(answer) : Promise.resolve(answer);
      },
      delete: () => Promise.reject(new Error("adjudications are never deleted")),
    };
    let n = 0;
    const saves = new SaveManager<Decision, ServerDecision>({
      transport,
      codec: ADJUDICATION_CODEC,
      newKey: () => `key-${++n}`,
      sleep: async () => undefined,
      backoffMs: [1, 1],
    });
    return { calls, saves };
  }

  it("creates with a key, retries a network failure with the same key, then changes with If-Match", async () => {
    const { calls, saves } = server([
      new NetworkError(),
      { status: 201, body: adjudication(7, "healthy", 1, "basal cells") },
      { status: 200, body: adjudication(7, "neoplastic", 2) },
    ]);
    saves.setKnown(7, null);
    const first = saves.submit(7, { value: "healthy", rationale: "basal cells" }, null);
    saves.submit(7, { value: "neoplastic", rationale: "" }, null);
    await saves.settled(7);
    expect(first.state).toBe("saved");
    expect(calls.map((call) => call.headers)).toEqual([
      { "Idempotency-Key": "key-1" },
      { "Idempotency-Key": "key-1" },
      { "Idempotency-Key": "key-2", "If-Match": '"1"' },
    ]);
    expect(calls[0]!.body).toEqual({ value: "healthy", rationale: "basal cells" });
    expect(saves.knownOf(7)).toMatchObject({ value: "neoplastic", version: 2, adjudicatedBy: "rev" });
  });

  it("a 409 is a conflict with the server's decision; keep mine goes against its version", async () => {
    const { calls, saves } = server([
      { status: 409, body: { detail: "exists", current: adjudication(3, "neoplastic", 1, "theirs") } },
      { status: 200, body: adjudication(3, "healthy", 2, "mine") },
    ]);
    saves.setKnown(3, null);
    const op = saves.submit(3, { value: "healthy", rationale: "mine" }, null);
    await saves.settled(3);
    expect(op.state).toBe("conflict");
    expect(op.server).toMatchObject({ value: "neoplastic", rationale: "theirs", version: 1, adjudicatedBy: "rev" });
    expect(saves.displayOf(3)).toEqual({ value: "healthy", rationale: "mine" });
    saves.keepMine(op);
    await saves.settled(3);
    expect(calls[1]!.headers).toEqual({ "Idempotency-Key": "key-2", "If-Match": '"1"' });
    expect(calls[1]!.body).toEqual({ value: "healthy", rationale: "mine" });
    expect(saves.knownOf(3)).toMatchObject({ value: "healthy", version: 2 });
  });

  it("taking the server's decision sends nothing and shows it", async () => {
    const { calls, saves } = server([{ status: 409, body: { detail: "stale", current: adjudication(3, "neoplastic", 2, "theirs") } }]);
    saves.setKnown(3, parseAdjudication(adjudication(3, "healthy", 1)));
    const op = saves.submit(3, { value: "unclear", rationale: "" }, null);
    await saves.settled(3);
    expect(calls[0]!.headers["If-Match"]).toBe('"1"');
    saves.takeServer(op);
    expect(calls).toHaveLength(1);
    expect(saves.displayOf(3)).toMatchObject({ value: "neoplastic", rationale: "theirs", version: 2 });
  });
});

describe("the review list", () => {
  it("walks the review queue's frames with the workspace's FrameList", () => {
    const list = new FrameList();
    const ticket = list.beginRefill(new Set());
    list.applyPage(ticket, asQueuePage(page([item(5), item(6)], 2, 4)));
    expect(list.frames.map((f) => f.id)).toEqual([5, 6]);
    expect(list.current()?.id).toBe(5);
    expect(list.exhausted).toBe(true);
    expect(asQueuePage(page([item(5)], 2, 4))).toMatchObject({ remaining: 2, total: 6 });
  });

  it("asks past the held frames: in the open list confirmed decisions are gone from the answer, elsewhere none is", () => {
    expect([...goneFromList("open", [1, 2])]).toEqual([1, 2]);
    expect([...goneFromList("adjudicated", [1, 2])]).toEqual([]);
    expect([...goneFromList("all", [1, 2])]).toEqual([]);
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 3), asQueuePage(page([item(1), item(2), item(3)], 9, 0)));
    expect(list.beginRefill(goneFromList("open", [1, 2]), 3).limit).toBe(4);
    list.failRefill();
    expect(list.beginRefill(goneFromList("all", [1, 2]), 3).limit).toBe(6);
  });

  it("tallies the annotators' values, most given first", () => {
    const annotations = [annotation(1, "a", "x"), annotation(2, "b", "y"), annotation(3, "c", "y")];
    expect(tally(annotations)).toEqual([
      { value: "y", count: 2 },
      { value: "x", count: 1 },
    ]);
    expect(tally([])).toEqual([]);
  });
});

describe("ReviewCounts", () => {
  it("moves a frame the page listed as open to adjudicated once it shows a decision", () => {
    const counts = new ReviewCounts();
    expect(counts.shown(new Set())).toEqual({ open: null, adjudicated: null });
    counts.apply(page([item(1), item(2), item(3)], 3, 1));
    expect(counts.shown(new Set())).toEqual({ open: 3, adjudicated: 1 });
    expect(counts.shown(new Set([1, 2]))).toEqual({ open: 1, adjudicated: 3 });
    // A refused decision shows none again: the count comes back.
    expect(counts.shown(new Set([2]))).toEqual({ open: 2, adjudicated: 2 });
  });

  it("does not count a change of an adjudicated frame, nor a decision the server counted already", () => {
    const counts = new ReviewCounts();
    // The "all" list: frame 1 adjudicated already, frame 2 open, frame 3 agreed and adjudicated.
    counts.apply(page([item(1, adjudication(1, "healthy")), item(2), item(3, adjudication(3, "healthy"), false)], 1, 2));
    expect(counts.shown(new Set([1, 2, 3]))).toEqual({ open: 0, adjudicated: 3 });
    // Next page: the server has frame 2's decision, so it is not listed as open any more.
    counts.apply(page([item(1, adjudication(1, "healthy")), item(2, adjudication(2, "healthy"))], 0, 3));
    expect(counts.shown(new Set([1, 2, 3]))).toEqual({ open: 0, adjudicated: 3 });
  });
});

describe("the review page's keys", () => {
  const choice = (value: string, hotkey: string): SchemaChoice => ({ value, label: value, hotkey, color: "#123456", is_active: true });
  const press = (key: string, code: string, mods: Partial<KeyLike> = {}): KeyLike => ({
    key,
    code,
    shiftKey: false,
    ctrlKey: false,
    altKey: false,
    metaKey: false,
    ...mods,
  });

  it("choice hotkeys decide; the page's own keys never clash with them", () => {
    // Every letter and digit a choice may have, at once.
    const all = [..."abcdefghijklmnopqrstuvwxyz0123456789"].map((key) => choice(`v${key}`, key));
    const keymap = buildKeymap(all, REVIEW_BINDINGS, "Decide");
    expect(keymap.byKey.get("n")).toEqual({ kind: "choice", value: "vn" });
    expect(keymap.byKey.get("0")).toEqual({ kind: "choice", value: "v0" });
    expect(keymap.byKey.get("Shift+0")).toEqual({ kind: "resetView" });
    expect(keymap.byKey.get(describeKey(press("N", "KeyN", { shiftKey: true })))).toEqual({ kind: "rationale" });
    expect(keymap.byKey.get("Shift+o")).toEqual({ kind: "status", status: "open" });
    expect(keymap.byKey.get("Shift+a")).toEqual({ kind: "status", status: "adjudicated" });
    expect(keymap.byKey.get("Shift+l")).toEqual({ kind: "status", status: "all" });
    expect(keymap.byKey.get("ArrowRight")).toEqual({ kind: "next" });
    expect(keymap.byKey.get("Shift+k")).toEqual({ kind: "keepMine" });
    expect(keymap.byKey.get("]")).toEqual({ kind: "brightness", delta: 0.1 });
    // The workspace's keys that mean nothing here are not bound.
    for (const key of ["Shift+m", "Shift+3", "Ctrl+z", "Backspace"]) expect(keymap.byKey.has(key)).toBe(false);
    expect(keymap.bindings.filter((binding) => binding.group === "Decide").length).toBe(36 + 2);
  });

  it("refuses a schema whose hotkeys clash, as the workspace does", () => {
    expect(() => buildKeymap([choice("a", "x"), choice("b", "x")], REVIEW_BINDINGS)).toThrow(KeymapError);
  });

  it("a held key never repeats a decision, a switch of list or the rationale", () => {
    expect(repeatable({ kind: "choice", value: "a" })).toBe(false);
    expect(repeatable({ kind: "status", status: "all" })).toBe(false);
    expect(repeatable({ kind: "rationale" })).toBe(false);
    expect(repeatable({ kind: "next" })).toBe(true);
    expect(repeatable({ kind: "zoomIn" })).toBe(true);
  });
});
