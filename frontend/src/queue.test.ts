import { describe, expect, it } from "vitest";
import { FrameList, QUEUE_MAX_LIMIT, type QueueFrame, type QueuePage } from "./queue";

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
