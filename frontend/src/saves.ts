// Saving labels without ever losing one or overwriting one silently.
//
// Every write is a SaveOp with its own Idempotency-Key, sent with the version it replaces (If-Match).
// A network failure or a 5xx is retried with the same key and the same body, so a retry of a write
// that did reach the server gets the stored answer instead of writing twice. Writes to one frame go
// out one after another, each with the version the previous one produced. A 409 stops that frame's
// writes and becomes a conflict that only the user resolves: keep theirs (resubmitted against the
// server's version) or take the server's.
//
// What is saved is generic: a Codec turns the user's intent (L) into a request body and the server's
// answer into its state (S, with a version). The default is the annotation endpoint's (value,
// confidence, time on frame); the review page saves adjudications (value, rationale) through the same
// manager with its own codec (review.ts).

export interface Label {
  value: string;
  confidence: number;
  /** Exposure to model output before this label (ai.ts ExposureTracker); left out: none. */
  aiShown?: boolean;
  camVisibleMs?: number;
}

export interface ServerAnnotation extends Label {
  version: number;
  updatedAt: string | null;
}

export interface Versioned {
  version: number;
}

export type SaveState = "saving" | "saved" | "failed" | "conflict" | "resolved" | "superseded";
export type Purpose = "label" | "undo" | "resolve";

export interface SaveOp<L = Label, S = ServerAnnotation> {
  seq: number;
  key: string;
  frameId: number;
  kind: "put" | "delete";
  /** What the user wants stored: a label, or null (no label) for a delete. */
  label: L | null;
  timeOnFrameMs: number | null;
  /** The version replaced (If-Match); null = create; undefined until the op is sent. */
  baseVersion: number | null | undefined;
  state: SaveState;
  /** Sends so far (the first one included). */
  attempts: number;
  /** Whether a failed op may be retried as it is (network trouble) or not (refused by the server). */
  retryable: boolean;
  error: string | null;
  /** On conflict: the server's state at that moment (null: it has no annotation). */
  server: S | null;
  resolution: "mine" | "server" | null;
  purpose: Purpose;
  result: S | null;
}

export interface HttpAnswer {
  status: number;
  body: unknown;
}

export interface Transport {
  put(frameId: number, body: Record<string, unknown>, headers: Record<string, string>): Promise<HttpAnswer>;
  delete(frameId: number, headers: Record<string, string>): Promise<HttpAnswer>;
}

/** Thrown by a transport when no answer came back (offline, connection reset, timeout). */
export class NetworkError extends Error {
  constructor(message = "network error") {
    super(message);
    this.name = "NetworkError";
  }
}

/** How one kind of record travels: the request body of an intent, the server's state from an answer. */
export interface Codec<L, S extends L & Versioned> {
  body(label: L, timeOnFrameMs: number | null): Record<string, unknown>;
  /** The server's state from a 200/201 body or a 409's `current` (null when it is not one). */
  parse(body: unknown): S | null;
}

export interface SaveOptions<L = Label, S extends L & Versioned = ServerAnnotation & L> {
  transport: Transport;
  /** Left out: annotations (ANNOTATION_CODEC); required for anything else. */
  codec?: Codec<L, S>;
  newKey?: () => string;
  sleep?: (ms: number) => Promise<void>;
  /** Waits between attempts; its length + 1 is the number of attempts before "failed". */
  backoffMs?: readonly number[];
}

export const DEFAULT_BACKOFF_MS = [250, 750, 1500, 3000, 6000] as const;

export function parseAnnotation(body: unknown): ServerAnnotation | null {
  if (typeof body !== "object" || body === null) return null;
  const record = body as Record<string, unknown>;
  if (typeof record.value !== "string" || typeof record.version !== "number") return null;
  return {
    value: record.value,
    confidence: typeof record.confidence === "number" ? record.confidence : 0,
    version: record.version,
    updatedAt: typeof record.updated_at === "string" ? record.updated_at : null,
  };
}

export const ANNOTATION_CODEC: Codec<Label, ServerAnnotation> = {
  body: (label, timeOnFrameMs) => ({
    value: label.value,
    confidence: label.confidence,
    time_on_frame_ms: timeOnFrameMs,
    ai_shown: label.aiShown ?? false,
    cam_visible_ms: label.camVisibleMs ?? 0,
  }),
  parse: parseAnnotation,
};

export function errorText(body: unknown, status: number): string {
  if (typeof body === "object" && body !== null) {
    const parts: string[] = [];
    for (const [field, value] of Object.entries(body as Record<string, unknown>)) {
      const text = Array.isArray(value) ? value.join(" ") : typeof value === "string" ? value : JSON.stringify(value);
      parts.push(field === "detail" ? text : `${field}: ${text}`);
    }
    if (parts.length > 0) return parts.join("; ");
  }
  if (status === 405) return "The server does not offer this operation.";
  return `The server answered ${status}.`;
}

export function sameLabel(a: Label | null | undefined, b: Label | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.value === b.value && a.confidence === b.confidence;
}

export class SaveManager<L = Label, S extends L & Versioned = ServerAnnotation & L> {
  readonly ops: SaveOp<L, S>[] = [];
  private readonly known = new Map<number, S | null>();
  private readonly chains = new Map<number, Promise<void>>();
  private readonly listeners = new Set<(op: SaveOp<L, S>) => void>();
  private readonly transport: Transport;
  private readonly codec: Codec<L, S>;
  private readonly newKey: () => string;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly backoff: readonly number[];
  private seq = 0;

  constructor(options: SaveOptions<L, S>) {
    this.transport = options.transport;
    this.codec = options.codec ?? (ANNOTATION_CODEC as unknown as Codec<L, S>);
    this.newKey = options.newKey ?? (() => crypto.randomUUID());
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.backoff = options.backoffMs ?? DEFAULT_BACKOFF_MS;
  }

  onChange(listener: (op: SaveOp<L, S>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The server's state of a frame as last confirmed (undefined: never heard; null: no annotation). */
  knownOf(frameId: number): S | null | undefined {
    return this.known.get(frameId);
  }

  /** Record what the server holds, e.g. null for a frame fresh from the work queue. */
  setKnown(frameId: number, state: S | null): void {
    if (!this.known.has(frameId)) this.known.set(frameId, state);
  }

  latestFor(frameId: number): SaveOp<L, S> | undefined {
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i]!;
      if (op.frameId === frameId && op.state !== "superseded") return op;
    }
    return undefined;
  }

  /** What the frame shows: the user's latest intent while it is on its way or failed for network
   * reasons, the conflict's "yours" while unresolved, otherwise the server's confirmed state. */
  displayOf(frameId: number): L | null {
    const op = this.latestFor(frameId);
    const known = this.known.get(frameId) ?? null;
    if (!op) return known;
    if (op.state === "saving" || op.state === "conflict" || (op.state === "failed" && op.retryable)) {
      return op.label;
    }
    return known;
  }

  conflicts(): SaveOp<L, S>[] {
    return this.ops.filter((op) => op.state === "conflict");
  }

  hasConflict(frameId: number): boolean {
    return this.ops.some((op) => op.frameId === frameId && op.state === "conflict");
  }

  failed(): SaveOp<L, S>[] {
    return this.ops.filter((op) => op.state === "failed");
  }

  pending(): number {
    return this.ops.filter((op) => op.state === "saving").length;
  }

  /** Resolves when every write queued so far for the frame has finished (whatever the outcome). */
  settled(frameId: number): Promise<void> {
    return this.chains.get(frameId) ?? Promise.resolve();
  }

  submit(frameId: number, label: L, timeOnFrameMs: number | null, purpose: Purpose = "label"): SaveOp<L, S> {
    return this.enqueue(this.create(frameId, "put", label, timeOnFrameMs, purpose));
  }

  remove(frameId: number, purpose: Purpose = "undo"): SaveOp<L, S> {
    return this.enqueue(this.create(frameId, "delete", null, null, purpose));
  }

  /** Send a failed op again with the same key and body (only the frame's latest intent). */
  retry(op: SaveOp<L, S>): boolean {
    if (op.state !== "failed" || !op.retryable || this.latestFor(op.frameId) !== op) return false;
    op.state = "saving";
    op.error = null;
    this.emit(op);
    this.chain(op.frameId, () => this.send(op));
    return true;
  }

  retryAll(): number {
    return this.failed().filter((op) => this.retry(op)).length;
  }

  /** Conflict resolution: store the user's label over the server's current version. */
  keepMine(op: SaveOp<L, S>): SaveOp<L, S> | null {
    if (op.state !== "conflict") return null;
    op.state = "resolved";
    op.resolution = "mine";
    this.emit(op);
    const next =
      op.label === null
        ? this.create(op.frameId, "delete", null, null, "resolve")
        : this.create(op.frameId, "put", op.label, op.timeOnFrameMs, "resolve");
    return this.enqueue(next);
  }

  /** Conflict resolution: adopt the server's state; nothing is sent. */
  takeServer(op: SaveOp<L, S>): boolean {
    if (op.state !== "conflict") return false;
    op.state = "resolved";
    op.resolution = "server";
    this.emit(op);
    return true;
  }

  private create(
    frameId: number,
    kind: "put" | "delete",
    label: L | null,
    timeOnFrameMs: number | null,
    purpose: Purpose,
  ): SaveOp<L, S> {
    return {
      seq: ++this.seq,
      key: this.newKey(),
      frameId,
      kind,
      label,
      timeOnFrameMs,
      baseVersion: undefined,
      state: "saving",
      attempts: 0,
      retryable: true,
      error: null,
      server: null,
      resolution: null,
      purpose,
      result: null,
    };
  }

  private enqueue(op: SaveOp<L, S>): SaveOp<L, S> {
    // A newer intent replaces a failed one that never got through.
    for (const old of this.ops) {
      if (old.frameId === op.frameId && old.state === "failed") {
        old.state = "superseded";
        this.emit(old);
      }
    }
    this.ops.push(op);
    this.emit(op);
    this.chain(op.frameId, () => this.send(op));
    return op;
  }

  private chain(frameId: number, work: () => Promise<void>): void {
    const previous = this.chains.get(frameId) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.chains.set(frameId, next);
  }

  private async send(op: SaveOp<L, S>): Promise<void> {
    if (op.state !== "saving") return; // superseded or resolved while it waited for its turn
    if (op.baseVersion === undefined) {
      const known = this.known.get(op.frameId) ?? null;
      if (op.kind === "delete" && known === null) {
        this.finish(op, null);
        return;
      }
      op.baseVersion = known?.version ?? null;
    }
    const headers: Record<string, string> = { "Idempotency-Key": op.key };
    if (op.baseVersion !== null) headers["If-Match"] = `"${op.baseVersion}"`;
    const body = op.label === null ? null : this.codec.body(op.label, op.timeOnFrameMs);
    for (;;) {
      op.attempts += 1;
      let answer: HttpAnswer;
      try {
        answer = body === null ? await this.transport.delete(op.frameId, headers) : await this.transport.put(op.frameId, body, headers);
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error;
        if (await this.backOff(op)) continue;
        this.fail(op, "The server could not be reached.", true);
        return;
      }
      const { status } = answer;
      if (status === 200 || status === 201) {
        this.finish(op, this.codec.parse(answer.body));
        return;
      }
      if (status === 204 || (status === 404 && op.kind === "delete")) {
        // DELETE carries no Idempotency-Key: a retry of a delete that did get through finds nothing
        // left (404), which is the state it asked for.
        this.finish(op, null);
        return;
      }
      if (status === 409) {
        this.conflict(op, answer.body);
        return;
      }
      if (status >= 500 || status === 408 || status === 429) {
        if (await this.backOff(op)) continue;
        this.fail(op, errorText(answer.body, status), true);
        return;
      }
      if (status === 401 || status === 403) {
        // Signed out (session expired) or the CSRF token went stale: keep the label as the user's
        // intent; after signing in again a retry sends it with the same key.
        this.fail(op, `${errorText(answer.body, status)} Sign in again, then retry (Shift+R).`, true);
        return;
      }
      this.fail(op, errorText(answer.body, status), false);
      return;
    }
  }

  private async backOff(op: SaveOp<L, S>): Promise<boolean> {
    const wait = this.backoff[op.attempts - 1];
    if (wait === undefined) return false;
    await this.sleep(wait);
    return op.state === "saving";
  }

  private finish(op: SaveOp<L, S>, result: S | null): void {
    this.known.set(op.frameId, result);
    op.result = result;
    op.state = "saved";
    this.emit(op);
  }

  private fail(op: SaveOp<L, S>, message: string, retryable: boolean): void {
    op.state = "failed";
    op.error = message;
    op.retryable = retryable;
    this.emit(op);
  }

  private conflict(op: SaveOp<L, S>, body: unknown): void {
    const current = typeof body === "object" && body !== null ? (body as Record<string, unknown>).current : null;
    const server = this.codec.parse(current);
    this.known.set(op.frameId, server);
    // Writes the user queued for this frame after this one were made without knowing of the conflict:
    // they wait for the resolution, which offers the latest of them as "yours".
    for (const later of this.ops) {
      if (later.frameId === op.frameId && later.seq > op.seq && later.state === "saving" && later.attempts === 0) {
        op.label = later.label;
        op.kind = later.kind;
        if (later.timeOnFrameMs !== null) op.timeOnFrameMs = later.timeOnFrameMs;
        later.state = "superseded";
        this.emit(later);
      }
    }
    op.server = server;
    op.state = "conflict";
    op.error = null;
    this.emit(op);
  }

  private emit(op: SaveOp<L, S>): void {
    for (const listener of this.listeners) listener(op);
  }
}
