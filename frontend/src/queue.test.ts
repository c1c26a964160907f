import { describe, expect, it } from "vitest";
import { FrameList, QUEUE_MAX_LIMIT, queuePath, type QueueFrame, type QueuePage } from "./queue";

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
  examination_site: "colon",
  examination_device: "pCLE",
});

const page = (ids: number[], remaining: number, total: number): QueuePage => ({
  task: 1,
  remaining,
  total,
  frames: ids.map(frame),
});

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("FrameList", () => {
  it("starts at the first frame of the first page", () => {
    const list = new FrameList();
    const ticket = list.beginRefill(new Set(), 20);
    expect(ticket.limit).toBe(20);
    expect(list.refilling).toBe(true);
    list.applyPage(ticket, page(range(1, 20), 50, 50));
    expect(list.current()?.id).toBe(1);
    expect(list.refilling).toBe(false);
    expect(list.exhausted).toBe(false);
  });

  it("asks past the frames it already holds unlabelled and drops them from the answer", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 20), page(range(1, 20), 50, 50));
    for (let i = 0; i < 12; i++) list.next();
    expect(list.needsRefill(10)).toBe(true);
    // Frames 1-12 are labelled, but the server has confirmed only 1-10: 11-20 come back again.
    const confirmed = new Set(range(1, 10));
    const ticket = list.beginRefill(confirmed, 20);
    expect(ticket.limit).toBe(30);
    expect(list.needsRefill(10)).toBe(false); // one refill at a time
    const added = list.applyPage(ticket, page(range(11, 40), 40, 50));
    expect(added).toBe(20);
    expect(list.frames.map((f) => f.id)).toEqual(range(1, 40));
    expect(list.current()?.id).toBe(13);
  });

  it("is exhausted when the queue answers fewer frames than asked for", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 20), page(range(1, 5), 5, 5));
    expect(list.exhausted).toBe(true);
    expect(list.needsRefill()).toBe(false);
  });

  it("stops asking when a full page brings nothing new", () => {
    const list = new FrameList();
    const ids = range(1, QUEUE_MAX_LIMIT);
    list.applyPage(list.beginRefill(new Set(), QUEUE_MAX_LIMIT), page(ids, 500, 500));
    const again = list.beginRefill(new Set(), 20);
    expect(again.limit).toBe(QUEUE_MAX_LIMIT);
    list.applyPage(again, page(ids, 500, 500));
    expect(list.exhausted).toBe(true);
  });

  it("a failed refill may be tried again", () => {
    const list = new FrameList();
    list.beginRefill(new Set());
    list.failRefill();
    expect(list.needsRefill()).toBe(true);
  });

  it("walks forward and back and jumps to a frame by id", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 3), page([7, 8, 9], 3, 3));
    expect(list.prev()).toBe(false);
    expect(list.next()).toBe(true);
    expect(list.next()).toBe(true);
    expect(list.next()).toBe(false);
    expect(list.atEnd()).toBe(true);
    expect(list.goTo(7)).toBe(true);
    expect(list.current()?.id).toBe(7);
    expect(list.goTo(99)).toBe(false);
  });

  it("gives the prefetch window around the cursor", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 20), page(range(1, 20), 20, 20));
    for (let i = 0; i < 5; i++) list.next();
    expect(list.current()?.id).toBe(6);
    expect(list.upcoming(3).map((f) => f.id)).toEqual([7, 8, 9]);
    expect(list.window(2, 4).map((f) => f.id)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    // Loaded in this order: the cursor's frame, the ones ahead, then the ones behind, nearest first.
    expect(list.prefetchOrder(2, 4).map((f) => f.id)).toEqual([6, 7, 8, 9, 10, 5, 4]);
    expect(list.window(2, 4).map((f) => f.id)).toEqual([4, 5, 6, 7, 8, 9, 10]); // the list is untouched
  });

  it("counts remaining frames from the server's count and the labels made or undone since", () => {
    const list = new FrameList();
    expect(list.remaining(new Set())).toBeNull();
    list.applyPage(list.beginRefill(new Set([]), 20), page(range(1, 20), 30, 40));
    expect(list.remaining(new Set())).toBe(30);
    expect(list.remaining(new Set([1, 2, 3]))).toBe(27);
    // Frames 1-3 labelled, only 1-2 confirmed when the refill left; 3's save landed before the count.
    const ticket = list.beginRefill(new Set([1, 2]), 20);
    list.applyPage(ticket, page(range(4, 30), 27, 40));
    expect(list.remaining(new Set([1, 2, 3]))).toBe(27);
    expect(list.remaining(new Set([1, 2, 3, 4]))).toBe(26);
    // Frame 2's label was undone: it counts as remaining again.
    expect(list.remaining(new Set([1, 3]))).toBe(28);
  });

  it("trusts a short page's length over the count made just before it", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 20), page(range(1, 20), 24, 24));
    // The count saw frame 5 unlabelled, its save landed before the listing: 19 listed, 20 counted.
    const ticket = list.beginRefill(new Set([1, 2, 3, 4]), 20);
    list.applyPage(ticket, page([...range(6, 24)], 20, 24));
    expect(list.exhausted).toBe(true);
    expect(list.remaining(new Set(range(1, 5)))).toBe(19);
  });

  it("does not count a save that was still on its way when the server counted twice", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 5), page(range(1, 5), 5, 5));
    // Frame 1 labelled; its save had not landed when the server counted: the page lists it again.
    const ticket = list.beginRefill(new Set(), 20);
    list.applyPage(ticket, page(range(1, 5), 5, 5));
    expect(list.remaining(new Set([1]))).toBe(4);
  });
});

// A page of a server that pages by cursor: next_cursor is the last frame's cursor ("c<id>").
const cursorPage = (ids: number[], remaining: number, total: number, after: string | null = null): QueuePage => ({
  ...page(ids, remaining, total),
  frames: ids.map((id) => ({ ...frame(id), cursor: `c${id}` })),
  next_cursor: ids.length > 0 ? `c${ids[ids.length - 1]}` : after,
});

describe("FrameList with cursor paging", () => {
  it("builds the queue URL with the cursor only when there is one", () => {
    expect(queuePath(3, 7, 20)).toBe("/api/projects/3/queue/?task=7&limit=20");
    expect(queuePath(3, 7, 20, "eyJ4Ijo+/=")).toBe("/api/projects/3/queue/?task=7&limit=20&after=eyJ4Ijo%2B%2F%3D");
  });

  it("asks for one batch after the last page's cursor instead of reaching past the frames it holds", () => {
    const list = new FrameList();
    const first = list.beginRefill(new Set(), 20);
    expect(first.after).toBeNull();
    list.applyPage(first, cursorPage(range(1, 20), 50, 50));
    expect(list.nextCursor).toBe("c20");
    for (let i = 0; i < 12; i++) list.next();
    // 1-12 labelled, only 1-10 confirmed: still one batch, after frame 20.
    const second = list.beginRefill(new Set(range(1, 10)), 20);
    expect(second.limit).toBe(20);
    expect(second.after).toBe("c20");
    expect(list.applyPage(second, cursorPage(range(21, 40), 38, 50))).toBe(20);
    expect(list.frames.map((f) => f.id)).toEqual(range(1, 40));
    expect(list.nextCursor).toBe("c40");
    expect(list.current()?.id).toBe(13);
  });

  it("keeps going when the reader skips far more frames than one page holds", () => {
    const list = new FrameList();
    let served = 0;
    const serve = (ticket: { limit: number; after: string | null }) => {
      // The server continues after the cursor; nothing is labelled, everything is skipped.
      const from = ticket.after === null ? 1 : Number(ticket.after.slice(1)) + 1;
      const ids = range(from, Math.min(from + ticket.limit - 1, 500));
      served += ids.length;
      return cursorPage(ids, 500, 500, ticket.after);
    };
    while (list.needsRefill()) {
      const ticket = list.beginRefill(new Set(), 20);
      list.applyPage(ticket, serve(ticket));
      while (!list.atEnd() && list.needsRefill() === false) list.next();
    }
    expect(list.frames.length).toBe(500);
    expect(served).toBe(500); // no frame was sent twice
    expect(list.exhausted).toBe(true);
    expect(list.current()?.id).toBe(500);
  });

  it("is exhausted by a short page and keeps its cursor after an empty one", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 20), cursorPage(range(1, 20), 20, 25));
    const ticket = list.beginRefill(new Set(), 20);
    list.applyPage(ticket, cursorPage([], 20, 25, ticket.after));
    expect(list.exhausted).toBe(true);
    expect(list.nextCursor).toBe("c20");
  });

  it("counts from the first page and the labels made or undone since, whatever saves were in flight", () => {
    const list = new FrameList();
    list.applyPage(list.beginRefill(new Set(), 20), cursorPage(range(1, 20), 30, 40));
    expect(list.remaining(new Set())).toBe(30);
    expect(list.remaining(new Set([1, 2, 3]))).toBe(27);
    // 1-3 labelled, only 1 confirmed: the server counted 2's save but not 3's (29 remaining); the
    // list does not depend on which of them had landed.
    const ticket = list.beginRefill(new Set([1]), 20);
    list.applyPage(ticket, cursorPage(range(21, 30), 29, 40));
    expect(list.exhausted).toBe(true);
    expect(list.remaining(new Set([1, 2, 3]))).toBe(27);
    // A new frame labelled, then frame 2's label undone.
    expect(list.remaining(new Set([1, 2, 3, 25]))).toBe(26);
    expect(list.remaining(new Set([1, 3, 25]))).toBe(27);
    // 5 frames imported meanwhile: the next page's total says so.
    list.applyPage(list.beginRefill(new Set([1, 2, 3]), 20), cursorPage(range(41, 45), 30, 45));
    expect(list.total).toBe(45);
    expect(list.remaining(new Set([1, 2, 3]))).toBe(32);
  });
});
