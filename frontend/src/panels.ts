// Pieces of the page shared by the labelling workspace and the review page: the examination context,
// the help overlay, the conflict dialog, the not-found and not-allowed states, the toast.

import type { FrameContext } from "./api";
import { h, type Child } from "./dom";
import type { QueueFrame } from "./queue";

/** Where the frame comes from; never any reference standard (the queue's frames carry none). */
export function contextList(frame: QueueFrame, context: FrameContext | undefined): HTMLElement {
  const rows: [string, string][] = [
    ["Patient", context?.patient_pseudonym ?? "…"],
    ["Examination", context?.examination_code ?? "…"],
    ["Site", frame.examination_site || "—"],
    ["Device", frame.examination_device || "—"],
    ["Video", context ? (context.video_name ?? "— (still images)") : "…"],
    [
      "Index",
      frame.index_in_video === null
        ? "—"
        : `${frame.index_in_video}${frame.time_s === null ? "" : ` (${frame.time_s.toFixed(2)} s)`}`,
    ],
    ["Frame", `#${frame.id} · ${frame.width}×${frame.height}`],
  ];
  return h(
    "dl",
    { class: "context-list" },
    rows.map(([term, value]) => [h("dt", {}, term), h("dd", { "data-field": term.toLowerCase() }, value)]),
  );
}

const KEY_LABELS: Record<string, string> = { ArrowRight: "→", ArrowLeft: "←", ArrowUp: "↑", ArrowDown: "↓", Escape: "Esc" };

/** "Shift+ArrowLeft" -> "Shift+←", "Shift+r" -> "Shift+R". */
export function keyLabel(key: string): string {
  return key
    .split("+")
    .map((part, index, parts) => {
      const label = KEY_LABELS[part] ?? part;
      return index === parts.length - 1 && parts.length > 1 && /^[a-z]$/.test(label) ? label.toUpperCase() : label;
    })
    .join("+");
}

/** The help overlay: an intro and one table of [keys, description] rows per group. */
export function helpModal(intro: string, groups: [string, [string[], string][]][], close: () => void): HTMLElement {
  return h(
    "div",
    { class: "modal-backdrop", onclick: close },
    h(
      "div",
      { class: "modal help", role: "dialog", "aria-label": "Keyboard shortcuts", onclick: (event: Event) => event.stopPropagation() },
      h("h2", {}, "Keyboard shortcuts"),
      h("p", { class: "muted small" }, intro),
      h(
        "div",
        { class: "help-grid" },
        groups
          .filter(([, rows]) => rows.length > 0)
          .map(([group, rows]) =>
            h(
              "section",
              {},
              h("h3", {}, group),
              h(
                "table",
                {},
                rows.map(([keys, description]) =>
                  h("tr", {}, h("td", {}, keys.map((key) => h("kbd", {}, keyLabel(key)))), h("td", {}, description)),
                ),
              ),
            ),
          ),
      ),
    ),
  );
}

export interface ConflictView {
  frameId: number;
  explanation: string;
  server: Child;
  serverMeta: string | null;
  mine: Child;
  /** Conflicts waiting, this one included. */
  count: number;
  keepMine: () => void;
  takeServer: () => void;
}

/** Nothing was overwritten: the server's state beside the user's, keep mine (Shift+K) or take the
 * server's (Shift+T). */
export function conflictModal(view: ConflictView): HTMLElement {
  return h(
    "div",
    { class: "modal-backdrop" },
    h(
      "div",
      { class: "modal conflict", role: "alertdialog", "aria-labelledby": "conflict-title", "data-frame": view.frameId },
      h("h2", { id: "conflict-title" }, `Conflict on frame #${view.frameId}`),
      h("p", {}, view.explanation),
      h(
        "div",
        { class: "conflict-sides" },
        h(
          "div",
          { class: "side-box", "data-side": "server" },
          h("div", { class: "panel-title" }, "On the server"),
          h("div", { class: "conflict-value" }, view.server),
          view.serverMeta ? h("div", { class: "muted small" }, view.serverMeta) : null,
        ),
        h(
          "div",
          { class: "side-box", "data-side": "mine" },
          h("div", { class: "panel-title" }, "Yours"),
          h("div", { class: "conflict-value" }, view.mine),
        ),
      ),
      h(
        "div",
        { class: "row end" },
        h("button", { class: "keep-mine primary", onclick: view.keepMine }, "Keep mine ", h("kbd", {}, "Shift+K")),
        h("button", { class: "take-server", onclick: view.takeServer }, "Take the server's ", h("kbd", {}, "Shift+T")),
      ),
      view.count > 1 ? h("p", { class: "muted small" }, `${view.count - 1} more conflict(s) after this one.`) : null,
    ),
  );
}

/** "version 2 · 1/2/2026, 10:00:00" */
export function versionText(version: number, updatedAt: string | null): string {
  return `version ${version}${updatedAt ? ` · ${new Date(updatedAt).toLocaleString()}` : ""}`;
}

/** A full-page state instead of the page: not found (404) or not allowed (403). */
export function pageState(state: "not-found" | "not-allowed", title: string, text: string): HTMLElement {
  document.title = `${title} · CLEAR`;
  return h(
    "div",
    { class: `center ${state}`, "data-state": state, role: "alert" },
    h("h1", {}, title),
    h("p", {}, text),
    h("a", { href: "/", "data-route": "" }, "Back to your projects"),
  );
}

/** A short message at the bottom of the page that goes away by itself. */
export class Toast {
  readonly element = h("div", { class: "toast", role: "status", "aria-live": "polite" });
  private timer = 0;

  show(text: string, kind: "info" | "error" = "info"): void {
    this.element.textContent = text;
    this.element.className = `toast show ${kind}`;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => {
      this.element.className = "toast";
    }, 4000);
  }

  dispose(): void {
    window.clearTimeout(this.timer);
  }
}
