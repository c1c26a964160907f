// The logic of a reader's session in a reader study (the page is reader.ts): which phase a case is
// in, what the reader has chosen but not sent, the reading timer without idle time, and the answers
// to send. No DOM here, so that Vitest covers it.

import type { Prediction } from "./ai";

export type Assistance = "unaided" | "prediction" | "prediction_and_cam";
export type ReadingPhase = "first" | "revised";

export interface Arm {
  id: number;
  name: string;
  assistance: Assistance;
  sequential: boolean;
}

export interface CaseChoice {
  value: string;
  label: string;
  color: string;
  hotkey: string;
}

export interface CaseQuestion {
  key: string;
  name: string;
  ask_confidence: boolean;
  choices: CaseChoice[];
}

export interface CaseFrame {
  id: number;
  width: number;
  height: number;
  crop_box: number[] | null;
  image_url: string;
  preview_url: string;
}

export interface Reading {
  id: number;
  case: number;
  question: string;
  phase: ReadingPhase;
  value: string;
  confidence: number | null;
  time_ms: number;
  ai_shown: boolean;
  cam_visible_ms: number;
  version: number;
  updated_at: string;
}

/** GET /api/reading-sessions/{id}/cases/{position}/ */
export interface CaseView {
  position: number;
  /** The first case not fully answered; null once every case is. */
  current_position: number | null;
  case_count: number;
  case: number;
  is_training: boolean;
  arm: Arm;
  frames: CaseFrame[];
  questions: CaseQuestion[];
  readings: Reading[];
  ai_available: boolean;
  ai_unavailable_reason: string;
  allow_navigation: boolean;
  allow_answer_changes: boolean;
}

/** GET /api/reading-sessions/{id}/ */
export interface SessionInfo {
  id: number;
  study: number;
  study_name: string;
  reader: number;
  reader_username: string;
  arm: Arm;
  period: number;
  case_count: number;
  started_at: string | null;
  completed_at: string | null;
  available: boolean;
  unavailable_reason: string;
  available_from: string | null;
  /** The first case not fully answered (where reading goes on); null once every case is. */
  current_position: number | null;
}

/** The body of PUT .../cases/{position}/readings/ */
export interface AnswerBody {
  question: string;
  phase: ReadingPhase;
  value: string;
  confidence: number | null;
  time_ms: number;
  ai_shown: boolean;
  cam_visible_ms: number;
}

export const ASSISTANCE_NAMES: Record<Assistance, string> = {
  unaided: "without AI",
  prediction: "with the AI's prediction",
  prediction_and_cam: "with the AI's prediction and heatmap (CAM)",
};

/** Every answer of a phase in one place: question key -> reading. */
export function answersOf(view: Pick<CaseView, "readings">, phase: ReadingPhase): Map<string, Reading> {
  return new Map(view.readings.filter((reading) => reading.phase === phase).map((reading) => [reading.question, reading]));
}

/**
 * What the case asks of the reader now: the first answers, then (in a sequential arm) the revised
 * answers after the AI is shown, then nothing ("done").
 */
export function casePhase(view: Pick<CaseView, "readings" | "questions" | "arm">): ReadingPhase | "done" {
  const firsts = answersOf(view, "first");
  if (view.questions.some((question) => !firsts.has(question.key))) return "first";
  if (!view.arm.sequential) return "done";
  const revised = answersOf(view, "revised");
  return view.questions.some((question) => !revised.has(question.key)) ? "revised" : "done";
}

/**
 * Whether the reader may (re)answer `phase` of this case: a phase not yet answered always; an
 * answered one only where the study allows answer changes, and never a sequential arm's first
 * answer (it was given before the AI was shown: changing it afterwards would not be unaided).
 */
export function canAnswer(view: Pick<CaseView, "readings" | "questions" | "arm" | "allow_answer_changes">, phase: ReadingPhase): boolean {
  const now = casePhase(view);
  if (now === phase) return true;
  if (phase === "first" && view.arm.sequential) return false;
  if (phase === "revised" && now === "first") return false;
  return view.allow_answer_changes;
}

/** The phase whose answers the page shows and edits for the case. */
export function editablePhase(view: Pick<CaseView, "readings" | "questions" | "arm">): ReadingPhase {
  const now = casePhase(view);
  if (now !== "done") return now;
  return view.arm.sequential ? "revised" : "first";
}

/** Whether the AI is to be shown with `phase` answers in this arm. */
export function aiShownIn(arm: Arm, phase: ReadingPhase): boolean {
  if (arm.assistance === "unaided") return false;
  return !arm.sequential || phase === "revised";
}

export interface Draft {
  value: string | null;
  confidence: number | null;
}

/**
 * The reader's choices for one phase of one case before they are sent: one draft per question,
 * started from what was answered before (for a revised answer: from the first answer, so that
 * keeping one's mind is one key press).
 */
export class Drafts {
  private readonly drafts = new Map<string, Draft>();

  constructor(
    readonly questions: readonly CaseQuestion[],
    start: Map<string, Pick<Reading, "value" | "confidence">>,
  ) {
    for (const question of questions) {
      const earlier = start.get(question.key);
      this.drafts.set(question.key, {
        value: earlier?.value ?? null,
        confidence: question.ask_confidence ? (earlier?.confidence ?? null) : null,
      });
    }
  }

  get(question: string): Draft {
    return this.drafts.get(question) ?? { value: null, confidence: null };
  }

  choose(question: string, value: string): void {
    const spec = this.questions.find((candidate) => candidate.key === question);
    if (!spec || !spec.choices.some((choice) => choice.value === value)) return;
    this.drafts.set(question, { ...this.get(question), value });
  }

  rate(question: string, confidence: number): void {
    const spec = this.questions.find((candidate) => candidate.key === question);
    if (!spec?.ask_confidence || !Number.isInteger(confidence) || confidence < 1 || confidence > 5) return;
    this.drafts.set(question, { ...this.get(question), confidence });
  }

  /** Whether the question has everything it asks for. */
  complete(question: CaseQuestion): boolean {
    const draft = this.get(question.key);
    return draft.value !== null && (!question.ask_confidence || draft.confidence !== null);
  }

  /** The first question still missing something (its value or its confidence), or null. */
  firstIncomplete(): CaseQuestion | null {
    return this.questions.find((question) => !this.complete(question)) ?? null;
  }

  /** What is missing, in words, for the page to say why the answers cannot go yet. */
  missing(): string[] {
    const missing: string[] = [];
    for (const question of this.questions) {
      const draft = this.get(question.key);
      if (draft.value === null) missing.push(`an answer to “${question.name}”`);
      else if (question.ask_confidence && draft.confidence === null) missing.push(`your confidence in “${question.name}”`);
    }
    return missing;
  }

  /** The answers to send, in question order (null while anything is missing). */
  answers(phase: ReadingPhase, timeMs: number, exposure: { aiShown: boolean; camVisibleMs: number }): AnswerBody[] | null {
    if (this.firstIncomplete() !== null) return null;
    return this.questions.map((question) => {
      const draft = this.get(question.key);
      return {
        question: question.key,
        phase,
        value: draft.value!,
        confidence: question.ask_confidence ? draft.confidence : null,
        time_ms: Math.max(0, Math.round(timeMs)),
        ai_shown: exposure.aiShown,
        cam_visible_ms: exposure.aiShown ? Math.max(0, Math.round(exposure.camVisibleMs)) : 0,
      };
    });
  }
}

/** After this long without any input, the reader is taken to be away: the gap is not reading time. */
export const IDLE_MS = 60_000;

/**
 * Reading time of one case and phase with idle time left out. Time between two signs of the reader
 * (a key, a click, the mouse moving or the wheel) counts in full when they are at most IDLE_MS apart
 * and not at all when further apart; while the tab is hidden nothing counts. The clock is injected
 * so that the tests can drive it.
 */
export class ReadingTimer {
  private activeMs = 0;
  private last: number;
  private paused = false;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly idleMs = IDLE_MS,
  ) {
    this.last = now();
  }

  /** A sign that the reader is there (and reading) now. */
  activity(): void {
    if (this.paused) return;
    const now = this.now();
    this.activeMs += this.counted(now - this.last);
    this.last = now;
  }

  /** The tab went to the background (true) or came back (false). */
  hidden(hidden: boolean): void {
    if (hidden && !this.paused) {
      this.activity();
      this.paused = true;
    } else if (!hidden && this.paused) {
      this.paused = false;
      this.last = this.now();
    }
  }

  /** The reading time so far, in milliseconds; the time since the last sign counts unless it is idle. */
  elapsed(): number {
    if (this.paused) return this.activeMs;
    return this.activeMs + this.counted(this.now() - this.last);
  }

  private counted(gap: number): number {
    return gap >= 0 && gap <= this.idleMs ? gap : 0;
  }
}

/** The predictions of one frame of the case, in question order (the AI endpoint's rows). */
export function predictionsOfFrame(predictions: readonly Prediction[], frame: number, questions: readonly CaseQuestion[]): Prediction[] {
  const order = new Map(questions.map((question, index) => [question.key, index]));
  return predictions
    .filter((prediction) => prediction.frame === frame)
    .sort((a, b) => (order.get(a.task_key) ?? 99) - (order.get(b.task_key) ?? 99));
}

/** The next session of the same study after `session` (crossover: the next period), if any. */
export function nextSession(sessions: readonly SessionInfo[], session: SessionInfo): SessionInfo | null {
  return (
    sessions
      .filter((candidate) => candidate.study === session.study && candidate.period > session.period && candidate.completed_at === null)
      .sort((a, b) => a.period - b.period)[0] ?? null
  );
}

/** Why a session cannot be read now, with a washout's end in the reader's own time zone. */
export function availableText(session: Pick<SessionInfo, "available" | "unavailable_reason" | "available_from">, locale?: string): string {
  if (session.available) return "Available now.";
  if (session.available_from) {
    const when = new Date(session.available_from).toLocaleString(locale, { dateStyle: "long", timeStyle: "short" });
    return `Washout: this period opens on ${when}. The pause between periods keeps the memory of the cases from the first reading out of the second.`;
  }
  return session.unavailable_reason;
}
