// The review page's pure side: the review queue's answer, adjudications as the save manager carries
// them, the counts shown while decisions are on their way, and the page's keys.
//
// Adjudications are saved by saves.ts's SaveManager with ADJUDICATION_CODEC: the same idempotency
// keys, retries, per-frame ordering and 409 conflicts as the workspace's labels.

import { APP_BINDINGS, type Action, type Binding, type ChoiceAction } from "./keymap";
import type { QueueFrame, QueuePage } from "./queue";
import type { Codec } from "./saves";

export type ReviewStatus = "open" | "adjudicated" | "all";

export const REVIEW_STATUSES: readonly ReviewStatus[] = ["open", "adjudicated", "all"];

export const STATUS_NAMES: Record<ReviewStatus, string> = {
  open: "Open",
  adjudicated: "Adjudicated",
  all: "All disagreements",
};

/** Roles that may review disagreements and adjudicate (a superuser's role is "admin"). */
export const ADJUDICATOR_ROLES: ReadonlySet<string> = new Set(["reviewer", "coordinator", "admin"]);

export function canAdjudicate(role: string | null | undefined): boolean {
  return role !== null && role !== undefined && ADJUDICATOR_ROLES.has(role);
}

export interface ReviewAnnotation {
  id: number;
  annotator: number;
  annotator_username: string;
  value: string;
  confidence: number;
  version: number;
  ai_shown: boolean;
  updated_at: string;
}

export interface AdjudicationRecord {
  id: number;
  frame: number;
  task: number;
  value: string;
  rationale: string;
  adjudicated_by: number;
  adjudicated_by_username: string;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface ReviewItem {
  frame: QueueFrame;
  annotations: ReviewAnnotation[];
  adjudication: AdjudicationRecord | null;
  disagreement: boolean;
}

export interface ReviewPage {
  task: number;
  open: number;
  adjudicated: number;
  items: ReviewItem[];
}

/** What the reviewer decides: the value and why. */
export interface Decision {
  value: string;
  rationale: string;
}

/** The server's adjudication as the save manager keeps it. */
export interface ServerDecision extends Decision {
  version: number;
  adjudicatedBy: string;
  updatedAt: string | null;
}

export function parseAdjudication(body: unknown): ServerDecision | null {
  if (typeof body !== "object" || body === null) return null;
  const record = body as Record<string, unknown>;
  if (typeof record.value !== "string" || typeof record.version !== "number") return null;
  return {
    value: record.value,
    rationale: typeof record.rationale === "string" ? record.rationale : "",
    version: record.version,
    adjudicatedBy: typeof record.adjudicated_by_username === "string" ? record.adjudicated_by_username : "",
    updatedAt: typeof record.updated_at === "string" ? record.updated_at : null,
  };
}

export const ADJUDICATION_CODEC: Codec<Decision, ServerDecision> = {
  body: (decision) => ({ value: decision.value, rationale: decision.rationale }),
  parse: parseAdjudication,
};

export function sameDecision(a: Decision | null | undefined, b: Decision | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.value === b.value && a.rationale === b.rationale;
}

/**
 * A review page as the workspace's FrameList takes pages: the items' frames in order, "remaining" the
 * open count. The page's items (annotations, adjudication) are kept beside the list by frame id.
 */
export function asQueuePage(page: ReviewPage): QueuePage {
  return { task: page.task, remaining: page.open, total: page.open + page.adjudicated, frames: page.items.map((item) => item.frame) };
}

/**
 * Frames whose decision the server has confirmed, for FrameList.beginRefill: in the open list they are
 * gone from the server's answer (a refill asks past the others); the other lists keep every item, so
 * none counts as gone.
 */
export function goneFromList(status: ReviewStatus, confirmed: Iterable<number>): Set<number> {
  return status === "open" ? new Set(confirmed) : new Set();
}

/** Values with how many annotators gave each, most given first (ties in the order first given). */
export function tally(annotations: readonly ReviewAnnotation[]): { value: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const annotation of annotations) counts.set(annotation.value, (counts.get(annotation.value) ?? 0) + 1);
  return [...counts.entries()].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count);
}

/**
 * The open and adjudicated counts as of now: the server's counts at the last page, corrected by the
 * decisions made since on frames that page listed as open (no adjudication yet, annotators
 * disagreeing). A decision on its way when the page was asked for is in it as open and corrected here;
 * one confirmed before is counted by the server already and not listed as open.
 */
export class ReviewCounts {
  open: number | null = null;
  adjudicated: number | null = null;
  private openAtCount: ReadonlySet<number> = new Set();

  apply(page: ReviewPage): void {
    this.open = page.open;
    this.adjudicated = page.adjudicated;
    this.openAtCount = new Set(
      page.items.filter((item) => item.adjudication === null && item.disagreement).map((item) => item.frame.id),
    );
  }

  /** `decided`: frames that show a decision now (on its way, or confirmed). */
  shown(decided: ReadonlySet<number>): { open: number | null; adjudicated: number | null } {
    if (this.open === null || this.adjudicated === null) return { open: null, adjudicated: null };
    let moved = 0;
    for (const id of this.openAtCount) if (decided.has(id)) moved += 1;
    return { open: Math.max(0, this.open - moved), adjudicated: this.adjudicated + moved };
  }
}

// --- Keys ------------------------------------------------------------------------------------------

type Shared = Extract<
  Action,
  {
    kind:
      | "next"
      | "prev"
      | "zoomIn"
      | "zoomOut"
      | "resetView"
      | "pan"
      | "brightness"
      | "contrast"
      | "resetAdjust"
      | "help"
      | "close"
      | "retry"
      | "keepMine"
      | "takeServer";
  }
>;

export type ReviewAction = ChoiceAction | Shared | { kind: "rationale" } | { kind: "status"; status: ReviewStatus };

const VIEW_BINDINGS = APP_BINDINGS.filter(
  // The CAM keys are the workspace's: the review page shows no model output.
  (binding): binding is Binding<Shared> => binding.group === "View" && binding.action.kind !== "overlay" && binding.action.kind !== "opacity",
);

/**
 * The review page's own keys, beside the task's choice hotkeys (which record the decision). As in the
 * workspace, every one is a symbol, a named key or carries Shift/Ctrl, so no choice can claim it; only
 * "0" (fit) gives way to a choice that has it (Shift+0 stays).
 */
export const REVIEW_BINDINGS: readonly Binding<ReviewAction>[] = [
  { keys: ["Shift+n"], action: { kind: "rationale" }, description: "Write a rationale (Enter saves it, Esc leaves the field)", group: "Decide" },
  { keys: ["Shift+r"], action: { kind: "retry" }, description: "Retry decisions that could not be saved", group: "Decide" },
  { keys: ["ArrowRight", "PageDown"], action: { kind: "next" }, description: "Next frame (skip)", group: "Navigate" },
  { keys: ["ArrowLeft", "PageUp"], action: { kind: "prev" }, description: "Previous frame", group: "Navigate" },
  { keys: ["Shift+o"], action: { kind: "status", status: "open" }, description: "Open disagreements (not adjudicated yet)", group: "Lists" },
  { keys: ["Shift+a"], action: { kind: "status", status: "adjudicated" }, description: "Adjudicated frames", group: "Lists" },
  { keys: ["Shift+l"], action: { kind: "status", status: "all" }, description: "All disagreements, adjudicated or not", group: "Lists" },
  ...VIEW_BINDINGS,
  { keys: ["Shift+k"], action: { kind: "keepMine" }, description: "In a conflict: keep your decision", group: "Other" },
  { keys: ["Shift+t"], action: { kind: "takeServer" }, description: "In a conflict: take the server's decision", group: "Other" },
  { keys: ["?"], action: { kind: "help" }, description: "Show or hide this help", group: "Other" },
  { keys: ["Escape"], action: { kind: "close" }, description: "Close the help", group: "Other" },
];
