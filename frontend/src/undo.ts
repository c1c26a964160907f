// Undo of the user's own labels, newest first. An entry remembers the frame's label before and after
// the action; undoing asks the server to hold `before` again, starting from whatever it holds now.

import type { Label, ServerAnnotation } from "./saves";
import { sameLabel } from "./saves";

export interface UndoEntry {
  frameId: number;
  before: Label | null;
  after: Label | null;
}

export type UndoPlan =
  | { kind: "nothing" }
  | { kind: "put"; label: Label }
  | { kind: "delete" };

export class UndoStack {
  private readonly entries: UndoEntry[] = [];

  constructor(private readonly limit = 500) {}

  push(entry: UndoEntry): void {
    if (sameLabel(entry.before, entry.after)) return;
    this.entries.push(entry);
    if (this.entries.length > this.limit) this.entries.shift();
  }

  pop(): UndoEntry | undefined {
    return this.entries.pop();
  }

  peek(): UndoEntry | undefined {
    return this.entries[this.entries.length - 1];
  }

  get size(): number {
    return this.entries.length;
  }
}

/** What to send so that the server holds `entry.before` again, given what it holds now. */
export function planUndo(entry: UndoEntry, server: ServerAnnotation | null): UndoPlan {
  if (sameLabel(entry.before, server)) return { kind: "nothing" };
  if (entry.before === null) return { kind: "delete" };
  return { kind: "put", label: { value: entry.before.value, confidence: entry.before.confidence } };
}
