// Bookkeeping of the frames the workspace walks through: the frames seen so far in queue order, the
// cursor, background refills from the work queue, and the progress shown to the user.
//
// The work queue pages by cursor: each page carries `next_cursor` (the last frame's position in the
// queue order), and a refill passes it back as `after`, so the server continues after the frames the
// list already holds (skipped, labelled, or with the save still on its way) instead of answering
// them again. A server without cursors (and the review queue, which has none) answers the first
// `limit` frames the user has not labelled: then frames already in the list come back and are dropped
// by id, so a refill asks for enough to reach past them (at most QUEUE_MAX_LIMIT, which is why skipping
// more than about 80 frames used to stall the list).

export interface QueueFrame {
  id: number;
  examination: number;
  video: number | null;
  index_in_video: number | null;
  time_s: number | null;
  width: number;
  height: number;
  mode: string;
  image_url: string;
  preview_url: string;
  examination_site: string;
  examination_device: string;
  /** The frame's position in the queue order (work queue only), for `after`. */
  cursor?: string;
}

export interface QueuePage {
  task: number;
  remaining: number;
  total: number;
  frames: QueueFrame[];
  /** Pass as `after` for the frames after this page; absent where the server pages without cursors. */
  next_cursor?: string | null;
}

export interface RefillTicket {
  limit: number;
  /** The cursor to continue after (`after`), or null for the start of the queue. */
  after: string | null;
  /** Frames whose label the server had confirmed when the request left. */
  confirmedAtRequest: ReadonlySet<number>;
}

/** The work queue's URL: `after` continues after that cursor. */
export function queuePath(project: number, task: number, limit: number, after: string | null = null): string {
  const params = new URLSearchParams({ task: String(task), limit: String(limit) });
  if (after !== null) params.set("after", after);
  return `/api/projects/${project}/queue/?${params.toString()}`;
}

export const QUEUE_MAX_LIMIT = 100;
export const REFILL_BATCH = 20;
export const REFILL_THRESHOLD = 10;

export class FrameList {
  frames: QueueFrame[] = [];
  cursor = -1;
  total: number | null = null;
  exhausted = false;
  refilling = false;
  /** Where the next page starts (the last page's next_cursor); null: the start of the queue. */
  nextCursor: string | null = null;
  /** Whether the server pages by cursor (learnt from its first page). */
  private byCursor = false;
  private serverRemaining: number | null = null;
  /** Frames the last page counted as unlabelled: exactly the frames it listed (see remaining()). */
  private unlabelledAtCount: ReadonlySet<number> = new Set();
  /** Frames the last page counted as labelled: list frames confirmed before it was asked for, and
   * (unless the page was cut at the maximum) every other list frame it did not list. */
  private labelledAtCount: ReadonlySet<number> = new Set();
  private readonly ids = new Map<number, number>();

  current(): QueueFrame | undefined {
    return this.frames[this.cursor];
  }

  has(frameId: number): boolean {
    return this.ids.has(frameId);
  }

  indexOf(frameId: number): number {
    return this.ids.get(frameId) ?? -1;
  }

  atEnd(): boolean {
    return this.cursor >= this.frames.length - 1;
  }

  next(): boolean {
    if (this.atEnd()) return false;
    this.cursor += 1;
    return true;
  }

  prev(): boolean {
    if (this.cursor <= 0) return false;
    this.cursor -= 1;
    return true;
  }

  goTo(frameId: number): boolean {
    const index = this.ids.get(frameId);
    if (index === undefined) return false;
    this.cursor = index;
    return true;
  }

  upcoming(count: number): QueueFrame[] {
    return this.frames.slice(this.cursor + 1, this.cursor + 1 + count);
  }

  /** The frames to keep decoded: a few behind the cursor (for going back) and more ahead. */
  window(behind: number, ahead: number): QueueFrame[] {
    return this.frames.slice(Math.max(0, this.cursor - behind), this.cursor + 1 + ahead);
  }

  /** The window in the order to load it: the cursor's frame first, then the ones ahead in order,
   * then the ones behind (nearest first). */
  prefetchOrder(behind: number, ahead: number): QueueFrame[] {
    const rank = (frame: QueueFrame) => {
      const distance = this.indexOf(frame.id) - this.cursor;
      return distance < 0 ? 100 - distance : distance;
    };
    return this.window(behind, ahead).sort((a, b) => rank(a) - rank(b));
  }

  needsRefill(threshold = REFILL_THRESHOLD): boolean {
    return !this.exhausted && !this.refilling && this.frames.length - 1 - this.cursor < threshold;
  }

  /**
   * Start a refill. `confirmed` are the frames of the list whose label the server has confirmed:
   * every other frame of the list is still unlabelled on the server and will be in the answer again,
   * so the request asks for that many more than a batch.
   */
  beginRefill(confirmed: ReadonlySet<number>, batch = REFILL_BATCH): RefillTicket {
    this.refilling = true;
    const confirmedAtRequest = new Set(confirmed);
    // With a cursor the server continues after the list's last frame: one batch is enough.
    if (this.byCursor) return { limit: Math.min(QUEUE_MAX_LIMIT, batch), after: this.nextCursor, confirmedAtRequest };
    let unlabelledKnown = 0;
    for (const frame of this.frames) if (!confirmed.has(frame.id)) unlabelledKnown += 1;
    return { limit: Math.min(QUEUE_MAX_LIMIT, unlabelledKnown + batch), after: null, confirmedAtRequest };
  }

  /** Take a page in: new frames are appended in queue order; returns how many were new. */
  applyPage(ticket: RefillTicket, page: QueuePage): number {
    this.refilling = false;
    let added = 0;
    for (const frame of page.frames) {
      if (this.ids.has(frame.id)) continue;
      this.ids.set(frame.id, this.frames.length);
      this.frames.push(frame);
      added += 1;
    }
    if (this.cursor < 0 && this.frames.length > 0) this.cursor = 0;
    if (page.next_cursor !== undefined) return this.applyCursorPage(ticket, page, added);
    this.total = page.total;
    this.exhausted = page.frames.length < ticket.limit || (added === 0 && ticket.limit >= QUEUE_MAX_LIMIT);
    // The server counts and lists in two queries: a save landing between them is counted as
    // unlabelled but not listed. A page shorter than asked lists every unlabelled frame, so its length
    // is the count that agrees with the list.
    this.serverRemaining = this.exhausted && page.frames.length < ticket.limit ? page.frames.length : page.remaining;
    this.unlabelledAtCount = new Set(page.frames.map((frame) => frame.id));
    const complete = ticket.limit < QUEUE_MAX_LIMIT;
    this.labelledAtCount = new Set(
      this.frames
        .map((frame) => frame.id)
        .filter((id) => !this.unlabelledAtCount.has(id) && (complete || ticket.confirmedAtRequest.has(id))),
    );
    return added;
  }

  /**
   * A cursor page lists only frames after the list's last one, so it says nothing about which of the
   * list's own frames the server counted as labelled (saves may be on their way, one after another,
   * while it counts). The first page is asked for with an empty list: its count is exact, and every
   * frame listed since was unlabelled when it came. So the count stays the first page's, less the
   * list's frames labelled since (remaining()), plus the frames later pages' totals add (an import
   * while labelling). Another tab's labels show after a reload.
   */
  private applyCursorPage(ticket: RefillTicket, page: QueuePage, added: number): number {
    this.byCursor = true;
    if (page.next_cursor) this.nextCursor = page.next_cursor;
    this.exhausted = page.frames.length < ticket.limit;
    this.serverRemaining =
      this.serverRemaining === null || this.total === null ? page.remaining : this.serverRemaining + page.total - this.total;
    this.total = page.total;
    this.unlabelledAtCount = new Set(this.frames.map((frame) => frame.id));
    this.labelledAtCount = new Set();
    return added;
  }

  failRefill(): void {
    this.refilling = false;
  }

  /**
   * Unlabelled frames left, as of now: the server's count at the last refill, less the frames it
   * counted as unlabelled that show a label now, plus the ones it counted as labelled that no longer
   * do (undone). A refill asks past every unlabelled frame of the list, so the page lists exactly the
   * list's frames that were unlabelled when the server counted, whatever saves were in flight then.
   */
  remaining(labelled: ReadonlySet<number>): number | null {
    if (this.serverRemaining === null) return null;
    let remaining = this.serverRemaining;
    for (const id of this.unlabelledAtCount) if (labelled.has(id)) remaining -= 1;
    for (const id of this.labelledAtCount) if (!labelled.has(id)) remaining += 1;
    return Math.max(0, Math.min(this.total ?? remaining, remaining));
  }
}
