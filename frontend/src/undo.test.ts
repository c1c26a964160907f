import { describe, expect, it } from "vitest";
import { planUndo, UndoStack } from "./undo";

const server = (value: string, confidence: number, version: number) => ({ value, confidence, version, updatedAt: null });

describe("UndoStack", () => {
  it("undoes the newest action first", () => {
    const stack = new UndoStack();
    stack.push({ frameId: 1, before: null, after: { value: "a", confidence: 3 } });
    stack.push({ frameId: 2, before: null, after: { value: "b", confidence: 3 } });
    expect(stack.size).toBe(2);
    expect(stack.pop()?.frameId).toBe(2);
    expect(stack.peek()?.frameId).toBe(1);
    expect(stack.pop()?.frameId).toBe(1);
    expect(stack.pop()).toBeUndefined();
  });

  it("ignores an action that changed nothing and keeps a bounded history", () => {
    const stack = new UndoStack(2);
    stack.push({ frameId: 1, before: { value: "a", confidence: 3 }, after: { value: "a", confidence: 3 } });
    expect(stack.size).toBe(0);
    for (const id of [1, 2, 3]) stack.push({ frameId: id, before: null, after: { value: "a", confidence: 1 } });
    expect(stack.size).toBe(2);
    expect(stack.pop()?.frameId).toBe(3);
    expect(stack.pop()?.frameId).toBe(2);
  });
});

describe("planUndo", () => {
  it("deletes a label that was new", () => {
    expect(planUndo({ frameId: 1, before: null, after: { value: "a", confidence: 3 } }, server("a", 3, 1))).toEqual({
      kind: "delete",
    });
  });

  it("puts the previous value back when a label was changed", () => {
    const entry = { frameId: 1, before: { value: "a", confidence: 2 }, after: { value: "b", confidence: 4 } };
    expect(planUndo(entry, server("b", 4, 2))).toEqual({ kind: "put", label: { value: "a", confidence: 2 } });
  });

  it("sends nothing when the server already holds the earlier state (the save never got through)", () => {
    expect(planUndo({ frameId: 1, before: null, after: { value: "a", confidence: 3 } }, null)).toEqual({ kind: "nothing" });
    const entry = { frameId: 1, before: { value: "a", confidence: 2 }, after: { value: "b", confidence: 2 } };
    expect(planUndo(entry, server("a", 2, 1))).toEqual({ kind: "nothing" });
  });
});
