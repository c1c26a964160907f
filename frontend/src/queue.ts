// Bookkeeping of the frames the workspace walks through: the frames seen so far in queue order, the
// cursor, background refills from the work queue, and the progress shown to the user.
//
// The work queue answers the first `limit` frames the user has not labelled. Frames already in the
// list (ahead of the cursor, skipped, or labelled with the save still on its way) come back in such
// a page and are dropped by id, so a refill asks for enough to reach past them.

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
}

export interface QueuePage {
  task: number;
  remaining: number;
  total: number;
  frames: QueueFrame[];
}

export interface RefillTicket {
  limit: number;
  /** Frames whose label the server had confirmed when the request left. */
  confirmedAtRequest: ReadonlySet<number>;
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
    let unlabelledKnown = 0;
    for (const frame of this.frames) if (!confirmed.has(frame.id)) unlabelledKnown += 1;
    return { limit: Math.min(QUEUE_MAX_LIMIT, unlabelledKnown + batch), confirmedAtRequest: new Set(confirmed) };
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
    this.exhausted = page.frames.length < ticket.limit || (added === 0 && ticket.limit >= QUEUE_MAX_LIMIT);
    this.total = page.total;
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
