import { describe, expect, it } from "vitest";
import { Prefetcher } from "./prefetch";

function deferredLoader() {
  const calls: string[] = [];
  const resolvers = new Map<string, { resolve: (v: string) => void; reject: (e: Error) => void }>();
  const loader = (url: string) => {
    calls.push(url);
    return new Promise<string>((resolve, reject) => resolvers.set(url, { resolve, reject }));
  };
  return { calls, resolvers, loader };
}

const f = (id: number) => ({ id, image_url: `/img/${id}` });
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("Prefetcher", () => {
  it("starts loads for wanted frames in the order given, once each", async () => {
    const { calls, loader } = deferredLoader();
    const prefetcher = new Prefetcher(loader);
    prefetcher.want([f(1), f(2), f(3)]);
    prefetcher.want([f(1), f(2), f(3), f(4)]);
    expect(calls).toEqual(["/img/1", "/img/2", "/img/3", "/img/4"]);
    expect(prefetcher.loads).toBe(4);
  });

  it("has a frame ready once its decode resolved", async () => {
    const { resolvers, loader } = deferredLoader();
    const prefetcher = new Prefetcher(loader);
    prefetcher.want([f(1), f(2)]);
    expect(prefetcher.ready(1)).toBeUndefined();
    expect(prefetcher.isLoading(1)).toBe(true);
    resolvers.get("/img/1")!.resolve("decoded-1");
    await tick();
    expect(prefetcher.ready(1)).toBe("decoded-1");
    expect(prefetcher.ready(2)).toBeUndefined();
    await expect(prefetcher.load(1, "/img/1")).resolves.toBe("decoded-1");
  });

  it("forgets frames that left the window", () => {
    const { loader } = deferredLoader();
    const prefetcher = new Prefetcher(loader);
    prefetcher.want([f(1), f(2), f(3)]);
    prefetcher.want([f(3), f(4)]);
    expect(prefetcher.cachedIds().sort()).toEqual([3, 4]);
  });

  it("tries a failed load again when asked next time", async () => {
    const { calls, resolvers, loader } = deferredLoader();
    const prefetcher = new Prefetcher(loader);
    const first = prefetcher.load(5, "/img/5");
    resolvers.get("/img/5")!.reject(new Error("offline"));
    await expect(first).rejects.toThrow("offline");
    await tick();
    expect(prefetcher.isLoading(5)).toBe(false);
    void prefetcher.load(5, "/img/5");
    expect(calls).toEqual(["/img/5", "/img/5"]);
  });
});
