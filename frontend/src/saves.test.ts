import { describe, expect, it } from "vitest";
import { NetworkError, SaveManager, type HttpAnswer, type Transport } from "./saves";

interface Call {
  method: "PUT" | "DELETE";
  frame: number;
  body: Record<string, unknown> | null;
  headers: Record<string, string>;
}

/** A scripted server: answers are taken in order; a NetworkError entry throws instead. */
function scripted(answers: (HttpAnswer | NetworkError)[]) {
  const calls: Call[] = [];
  const next = (): Promise<HttpAnswer> => {
    const answer = answers.shift();
    if (answer === undefined) throw new Error("no scripted answer left");
    return answer instanceof NetworkError ? Promise.reject(answer) : Promise.resolve(answer);
  };
  const transport: Transport = {
    put: (frame, body, headers) => {
      calls.push({ method: "PUT", frame, body, headers: { ...headers } });
      return next();
    },
    delete: (frame, headers) => {
      calls.push({ method: "DELETE", frame, body: null, headers: { ...headers } });
      return next();
    },
  };
  return { calls, transport };
}

const annotation = (value: string, confidence: number, version: number) => ({
  id: 1,
  value,
  confidence,
  version,
  updated_at: "2026-01-01T00:00:00Z",
});

function manager(transport: Transport, backoffMs: number[] = [1, 1, 1]) {
  let n = 0;
  const slept: number[] = [];
  const saves = new SaveManager({
    transport,
    newKey: () => `key-${++n}`,
    sleep: async (ms) => {
      slept.push(ms);
    },
    backoffMs,
  });
  return { saves, slept };
}

describe("SaveManager", () => {
  it("creates without a version and remembers the version the server gave", async () => {
    const { calls, transport } = scripted([{ status: 201, body: annotation("a", 4, 1) }]);
    const { saves } = manager(transport);
    saves.setKnown(10, null);
    const op = saves.submit(10, { value: "a", confidence: 4 }, 1234);
    expect(op.state).toBe("saving");
    expect(saves.displayOf(10)).toEqual({ value: "a", confidence: 4 });
    await saves.settled(10);
    expect(op.state).toBe("saved");
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers).toEqual({ "Idempotency-Key": "key-1" });
    expect(calls[0]!.body).toEqual({ value: "a", confidence: 4, time_on_frame_ms: 1234, ai_shown: false, cam_visible_ms: 0 });
    expect(saves.knownOf(10)).toMatchObject({ value: "a", confidence: 4, version: 1 });
  });

  it("sends the label's exposure to model output, and the same again with a conflict's keep-mine", async () => {
    const { calls, transport } = scripted([
      { status: 409, body: { detail: "stale", current: annotation("b", 2, 2) } },
      { status: 200, body: annotation("a", 4, 3) },
    ]);
    const { saves } = manager(transport);
    saves.setKnown(7, { value: "a", confidence: 3, version: 1, updatedAt: null });
    const op = saves.submit(7, { value: "a", confidence: 4, aiShown: true, camVisibleMs: 2500 }, 900);
    await saves.settled(7);
    saves.keepMine(op);
    await saves.settled(7);
    const sent = { value: "a", confidence: 4, time_on_frame_ms: 900, ai_shown: true, cam_visible_ms: 2500 };
    expect(calls.map((call) => call.body)).toEqual([sent, sent]);
  });

  it("retries a network failure with the same Idempotency-Key and the same body", async () => {
    const { calls, transport } = scripted([
      new NetworkError(),
      { status: 503, body: null },
      { status: 201, body: annotation("a", 3, 1) },
    ]);
    const { saves, slept } = manager(transport, [100, 200, 400]);
    const op = saves.submit(1, { value: "a", confidence: 3 }, 50);
    await saves.settled(1);
    expect(op.state).toBe("saved");
    expect(op.attempts).toBe(3);
    expect(slept).toEqual([100, 200]);
    expect(calls.map((call) => call.headers["Idempotency-Key"])).toEqual(["key-1", "key-1", "key-1"]);
    expect(new Set(calls.map((call) => JSON.stringify(call.body))).size).toBe(1);
  });

  it("fails after the last backoff and a manual retry still uses the same key", async () => {
    const { calls, transport } = scripted([
      new NetworkError(),
      new NetworkError(),
      { status: 200, body: annotation("a", 3, 1) },
    ]);
    const { saves } = manager(transport, [1]);
    const op = saves.submit(1, { value: "a", confidence: 3 }, null);
    await saves.settled(1);
    expect(op.state).toBe("failed");
    expect(op.retryable).toBe(true);
    expect(saves.displayOf(1)).toEqual({ value: "a", confidence: 3 }); // still the user's intent
    expect(saves.failed()).toEqual([op]);
    expect(saves.retry(op)).toBe(true);
    await saves.settled(1);
    expect(op.state).toBe("saved");
    expect(calls.map((call) => call.headers["Idempotency-Key"])).toEqual(["key-1", "key-1", "key-1"]);
  });

  it("does not retry a refusal and shows the server's state again", async () => {
    const { calls, transport } = scripted([{ status: 400, body: { value: ["'x' is not a choice."] } }]);
    const { saves } = manager(transport);
    saves.setKnown(1, null);
    const op = saves.submit(1, { value: "x", confidence: 3 }, null);
    await saves.settled(1);
    expect(calls).toHaveLength(1);
    expect(op.state).toBe("failed");
    expect(op.retryable).toBe(false);
    expect(op.error).toBe("value: 'x' is not a choice.");
    expect(saves.displayOf(1)).toBeNull();
    expect(saves.retry(op)).toBe(false);
  });

  it("keeps the label when the session is gone, for a retry after signing in again", async () => {
    const { calls, transport } = scripted([
      { status: 403, body: { detail: "Authentication credentials were not provided." } },
      { status: 201, body: annotation("a", 3, 1) },
    ]);
    const { saves } = manager(transport);
    saves.setKnown(1, null);
    const op = saves.submit(1, { value: "a", confidence: 3 }, null);
    await saves.settled(1);
    expect(calls).toHaveLength(1); // no automatic retries against a missing session
    expect(op.state).toBe("failed");
    expect(op.retryable).toBe(true);
    expect(op.error).toContain("Sign in again");
    expect(saves.displayOf(1)).toEqual({ value: "a", confidence: 3 });
    expect(saves.retry(op)).toBe(true);
    await saves.settled(1);
    expect(op.state).toBe("saved");
    expect(calls[1]!.headers["Idempotency-Key"]).toBe(calls[0]!.headers["Idempotency-Key"]);
  });

  it("sends a frame's writes one after another, each with the version the previous one produced", async () => {
    const { calls, transport } = scripted([
      { status: 201, body: annotation("a", 3, 1) },
      { status: 200, body: annotation("b", 3, 2) },
    ]);
    const { saves } = manager(transport);
    saves.setKnown(5, null);
    saves.submit(5, { value: "a", confidence: 3 }, null);
    saves.submit(5, { value: "b", confidence: 3 }, null);
    await saves.settled(5);
    expect(calls[0]!.headers["If-Match"]).toBeUndefined();
    expect(calls[1]!.headers["If-Match"]).toBe('"1"');
    expect(calls[1]!.headers["Idempotency-Key"]).toBe("key-2");
    expect(saves.knownOf(5)?.version).toBe(2);
  });

  describe("conflicts", () => {
    it("a 409 becomes a conflict with the server's state; nothing more is sent until the user decides", async () => {
      const { calls, transport } = scripted([{ status: 409, body: { detail: "stale", current: annotation("b", 5, 2) } }]);
      const { saves } = manager(transport);
      saves.setKnown(1, { value: "a", confidence: 3, version: 1, updatedAt: null });
      const op = saves.submit(1, { value: "c", confidence: 3 }, 10);
      await saves.settled(1);
      expect(calls[0]!.headers["If-Match"]).toBe('"1"');
      expect(op.state).toBe("conflict");
      expect(op.server).toMatchObject({ value: "b", confidence: 5, version: 2 });
      expect(saves.conflicts()).toEqual([op]);
      expect(saves.hasConflict(1)).toBe(true);
      expect(saves.displayOf(1)).toEqual({ value: "c", confidence: 3 });
    });

    it("keep mine resubmits the user's label against the server's version with a new key", async () => {
      const { calls, transport } = scripted([
        { status: 409, body: { detail: "stale", current: annotation("b", 5, 2) } },
        { status: 200, body: annotation("c", 3, 3) },
      ]);
      const { saves } = manager(transport);
      saves.setKnown(1, { value: "a", confidence: 3, version: 1, updatedAt: null });
      const op = saves.submit(1, { value: "c", confidence: 3 }, 10);
      await saves.settled(1);
      const resolution = saves.keepMine(op)!;
      expect(op.state).toBe("resolved");
      expect(op.resolution).toBe("mine");
      await saves.settled(1);
      expect(resolution.state).toBe("saved");
      expect(resolution.purpose).toBe("resolve");
      expect(calls[1]!.headers).toEqual({ "Idempotency-Key": "key-2", "If-Match": '"2"' });
      expect(calls[1]!.body).toEqual({ value: "c", confidence: 3, time_on_frame_ms: 10, ai_shown: false, cam_visible_ms: 0 });
      expect(saves.knownOf(1)).toMatchObject({ value: "c", version: 3 });
      expect(saves.conflicts()).toEqual([]);
    });

    it("take the server's adopts its state and sends nothing", async () => {
      const { calls, transport } = scripted([{ status: 409, body: { detail: "stale", current: annotation("b", 5, 2) } }]);
      const { saves } = manager(transport);
      saves.setKnown(1, { value: "a", confidence: 3, version: 1, updatedAt: null });
      const op = saves.submit(1, { value: "c", confidence: 3 }, null);
      await saves.settled(1);
      expect(saves.takeServer(op)).toBe(true);
      expect(op.state).toBe("resolved");
      expect(op.resolution).toBe("server");
      expect(saves.displayOf(1)).toEqual({ value: "b", confidence: 5, version: 2, updatedAt: "2026-01-01T00:00:00Z" });
      expect(calls).toHaveLength(1);
      expect(saves.takeServer(op)).toBe(false);
      expect(saves.keepMine(op)).toBeNull();
    });

    it("a create that meets an existing annotation (another tab) is a conflict too", async () => {
      const { transport } = scripted([
        { status: 409, body: { detail: "exists", current: annotation("b", 2, 1) } },
        { status: 200, body: annotation("a", 4, 2) },
      ]);
      const { saves } = manager(transport);
      saves.setKnown(1, null);
      const op = saves.submit(1, { value: "a", confidence: 4 }, null);
      await saves.settled(1);
      expect(op.state).toBe("conflict");
      saves.keepMine(op);
      await saves.settled(1);
      expect(saves.knownOf(1)).toMatchObject({ value: "a", version: 2 });
    });

    it("writes queued behind a conflicting one wait for the resolution, which offers the latest as yours", async () => {
      const { calls, transport } = scripted([{ status: 409, body: { detail: "stale", current: annotation("b", 5, 2) } }]);
      const { saves } = manager(transport);
      saves.setKnown(1, { value: "a", confidence: 3, version: 1, updatedAt: null });
      const first = saves.submit(1, { value: "c", confidence: 3 }, null);
      const second = saves.submit(1, { value: "c", confidence: 5 }, null);
      await saves.settled(1);
      expect(calls).toHaveLength(1);
      expect(second.state).toBe("superseded");
      expect(first.state).toBe("conflict");
      expect(first.label).toEqual({ value: "c", confidence: 5 });
    });
  });

  describe("deletes (undo of a new label)", () => {
    it("deletes with If-Match and forgets the annotation", async () => {
      const { calls, transport } = scripted([{ status: 201, body: annotation("a", 3, 1) }, { status: 204, body: null }]);
      const { saves } = manager(transport);
      saves.setKnown(1, null);
      saves.submit(1, { value: "a", confidence: 3 }, null);
      const op = saves.remove(1);
      await saves.settled(1);
      expect(op.state).toBe("saved");
      expect(calls[1]).toMatchObject({ method: "DELETE", headers: { "If-Match": '"1"' } });
      expect(saves.knownOf(1)).toBeNull();
      expect(saves.displayOf(1)).toBeNull();
    });

    it("a retried delete that finds nothing left has done its job", async () => {
      const { transport } = scripted([new NetworkError(), { status: 404, body: { detail: "gone" } }]);
      const { saves } = manager(transport);
      saves.setKnown(1, { value: "a", confidence: 3, version: 1, updatedAt: null });
      const op = saves.remove(1);
      await saves.settled(1);
      expect(op.state).toBe("saved");
      expect(saves.knownOf(1)).toBeNull();
    });

    it("sends nothing when there is nothing to delete", async () => {
      const { calls, transport } = scripted([]);
      const { saves } = manager(transport);
      saves.setKnown(1, null);
      const op = saves.remove(1);
      await saves.settled(1);
      expect(op.state).toBe("saved");
      expect(calls).toHaveLength(0);
    });
  });

  it("a newer label replaces a failed one that never got through", async () => {
    const { transport } = scripted([new NetworkError(), { status: 201, body: annotation("b", 3, 1) }]);
    const { saves } = manager(transport, []);
    saves.setKnown(1, null);
    const failed = saves.submit(1, { value: "a", confidence: 3 }, null);
    await saves.settled(1);
    expect(failed.state).toBe("failed");
    const next = saves.submit(1, { value: "b", confidence: 3 }, null);
    expect(failed.state).toBe("superseded");
    await saves.settled(1);
    expect(next.state).toBe("saved");
    expect(saves.retryAll()).toBe(0);
  });
});
