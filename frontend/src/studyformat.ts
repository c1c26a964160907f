// How the study pages write numbers, intervals, refusals and session states: pure functions, so the
// tables read the same everywhere and the tests can pin them (studyformat.test.ts).

/** Shown where a number is missing; the reason goes next to it. */
export const MISSING = "—";

/** A number with `digits` decimals, or MISSING for null/NaN. */
export function formatNumber(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return MISSING;
  // -0.00 reads like a sign where there is none.
  const text = value.toFixed(digits);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text;
}

/** "0.82 (0.71–0.90)": the estimate and its interval; the estimate alone when the interval is
 * missing, MISSING when the estimate is. */
export function formatEstimate(
  estimate: number | null | undefined,
  low: number | null | undefined,
  high: number | null | undefined,
  digits = 2,
): string {
  const value = formatNumber(estimate, digits);
  if (value === MISSING) return MISSING;
  const from = formatNumber(low, digits);
  const to = formatNumber(high, digits);
  if (from === MISSING || to === MISSING) return value;
  return `${value} (${from}–${to})`;
}

export interface ProportionLike {
  value: number | null;
  ci_low: number | null;
  ci_high: number | null;
  numerator: number;
  denominator: number;
  reason?: string;
}

/** A proportion as "0.75 (0.30–0.95)" with its counts "3/4", or MISSING and the reason. */
export function formatProportion(proportion: ProportionLike | null | undefined): { text: string; counts: string; reason: string } {
  if (!proportion) return { text: MISSING, counts: "", reason: "Not computed." };
  return {
    text: formatEstimate(proportion.value, proportion.ci_low, proportion.ci_high),
    counts: `${proportion.numerator}/${proportion.denominator}`,
    reason: proportion.value === null ? proportion.reason || "Not computed." : "",
  };
}

/** A p-value: three decimals, "< 0.001" below that. */
export function formatP(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return MISSING;
  return p < 0.001 ? "< 0.001" : p.toFixed(3);
}

/** A duration in milliseconds: "850 ms", "12.3 s", "2.5 min". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return MISSING;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/** A share as a percentage ("25 %"), MISSING where undefined (e.g. nothing to switch from). */
export function formatRate(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return MISSING;
  return `${Math.round(rate * 100)} %`;
}

/** Choices that name the condition looked for, in the project's usual vocabularies. */
const POSITIVE_NAMES = ["neoplastic", "malignant", "positive", "cancer", "tumour", "tumor", "dysplasia", "abnormal"];

/** The positive class the results page starts with: a choice that names the condition (e.g.
 * 'neoplastic') where the question offers one; else, for two choices, the second (the API's own
 * default: the last choice by order, the ordered end such as healthy/neoplastic); else none, and the
 * question is analysed as multi-class. */
export function defaultPositive(choices: readonly string[]): string | null {
  const named = POSITIVE_NAMES.find((name) => choices.includes(name));
  if (named) return named;
  return choices.length === 2 ? choices[1]! : null;
}

export const POSITIVE_RULE =
  "Default: a choice naming the condition (e.g. 'neoplastic') where the question has one, else the second of two choices; " +
  "a question with more choices and none picked is analysed as multi-class (accuracy and agreement only).";

/** Every message of a DRF error body, each with the field it is about ("questions: No such tasks…"),
 * nested fields joined by dots and list positions numbered from 1 ("arms.2.name: …"). */
export function errorMessages(body: unknown, path: string[] = []): string[] {
  if (body === null || body === undefined) return [];
  if (typeof body === "string") {
    const field = path.filter((part) => part !== "detail" && part !== "non_field_errors").join(".");
    return [field ? `${field}: ${body}` : body];
  }
  if (Array.isArray(body)) {
    const nested = body.some((item) => typeof item === "object" && item !== null);
    return body.flatMap((item, index) => errorMessages(item, nested ? [...path, String(index + 1)] : path));
  }
  if (typeof body === "object") {
    return Object.entries(body as Record<string, unknown>).flatMap(([key, value]) => errorMessages(value, [...path, key]));
  }
  return [String(body)];
}

export interface SessionLike {
  available: boolean;
  unavailable_reason: string;
  available_from: string | null;
  completed_at: string | null;
  started_at: string | null;
  case_count: number;
  current_position?: number | null;
}

export type SessionState = "completed" | "available" | "waiting";

/** Where a reader stands with a session: done, may read now, or waits (with why and until when). */
export function sessionState(session: SessionLike, locale?: string): { state: SessionState; text: string } {
  if (session.completed_at) return { state: "completed", text: "Completed" };
  if (session.available) return { state: "available", text: session.started_at ? "In progress" : "Not started" };
  const reason = session.unavailable_reason || "Not available yet.";
  if (!session.available_from) return { state: "waiting", text: reason };
  const from = new Date(session.available_from).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
  return { state: "waiting", text: `${reason} Available from ${from}.` };
}

/** "3 / 10 cases": the cases answered so far, where the session says. */
export function sessionProgress(session: SessionLike): string {
  if (session.completed_at) return `${session.case_count} / ${session.case_count} cases`;
  if (session.current_position === undefined || session.current_position === null) {
    return session.started_at ? `${session.case_count} cases` : `0 / ${session.case_count} cases`;
  }
  return `${session.current_position} / ${session.case_count} cases`;
}

/** The first integer field `field` of a JSON text, as written (JSON.parse rounds integers beyond
 * 2^53); null when there is none. */
export function exactInteger(json: string, field: string): string | null {
  const escaped = field.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(`"${escaped}"\\s*:\\s*(-?\\d+)(?![.\\deE])`).exec(json);
  return match ? match[1]! : null;
}

/** A JSON object's text with the integer field `field` added as written (`digits`, checked), for an
 * integer beyond what JSON.stringify can write from a number. */
export function withExactInteger(json: string, field: string, digits: string): string {
  if (!/^-?\d+$/.test(digits)) throw new Error(`${field} must be a whole number, not ${JSON.stringify(digits)}.`);
  const body = json.trim();
  if (!body.startsWith("{") || !body.endsWith("}")) throw new Error("Not a JSON object.");
  const inner = body.slice(1, -1).trim();
  return `{${inner}${inner ? "," : ""}${JSON.stringify(field)}:${digits}}`;
}
