// The reader-study API as the coordinator pages use it: the answers' types and one call each
// (studies/apis.py, studies/results_apis.py; the results' shapes are studies/results.py's).

import { ApiError, all, csrfToken, get, request } from "./api";
import { NetworkError } from "./saves";
import { exactInteger, withExactInteger } from "./studyformat";

/** ReaderStudy.Design, CaseUnit and StudyArm.Assistance (studies/models.py), with their labels. The
 * create serializer takes exactly these values; tests/frontend/test_study_choices.py keeps them in
 * step with the model. */
export const DESIGNS = [
  { value: "fully_crossed", label: "Fully crossed: every reader reads every case in every arm" },
  { value: "crossover", label: "Counterbalanced crossover: one arm per period, washout between periods" },
  { value: "split_plot", label: "Split-plot: each reader group reads its own case block in every arm" },
] as const;
export type Design = (typeof DESIGNS)[number]["value"];

export const CASE_UNITS = [
  { value: "frame", label: "A case is one frame" },
  { value: "examination", label: "A case is a whole examination" },
] as const;
export type CaseUnit = (typeof CASE_UNITS)[number]["value"];

export const ASSISTANCES = [
  { value: "unaided", label: "Unaided: no model output" },
  { value: "prediction", label: "AI prediction" },
  { value: "prediction_and_cam", label: "AI prediction and CAM" },
] as const;
export type Assistance = (typeof ASSISTANCES)[number]["value"];

export const STUDY_MANAGER_ROLES: ReadonlySet<string> = new Set(["coordinator", "admin"]);

export interface StudyArm {
  id?: number;
  name: string;
  assistance: Assistance;
  sequential: boolean;
}

export interface StudyQuestion {
  task: number;
  task_key: string;
  task_name: string;
  ask_confidence: boolean;
  model_version: number | null;
  gate_version: number | null;
}

export interface Study {
  id: number;
  project: number;
  name: string;
  description: string;
  design: Design;
  case_unit: CaseUnit;
  status: "draft" | "open" | "locked";
  washout_days: number;
  reader_groups: number;
  seed: number;
  allow_navigation: boolean;
  allow_answer_changes: boolean;
  questions: StudyQuestion[];
  arms: StudyArm[];
  case_count: number;
  training_case_count: number;
  created_at: string;
  opened_at: string | null;
  locked_at: string | null;
}

export interface StudySettings {
  name: string;
  description: string;
  design: Design;
  case_unit: CaseUnit;
  washout_days: number;
  reader_groups: number;
  allow_navigation: boolean;
  allow_answer_changes: boolean;
}

export interface ReadingSession {
  id: number;
  study: number;
  study_name: string;
  reader: number;
  reader_username: string;
  arm: StudyArm;
  period: number;
  case_count: number;
  started_at: string | null;
  completed_at: string | null;
  available: boolean;
  unavailable_reason: string;
  available_from: string | null;
  /** The first case not fully answered; null once every case is (absent from older servers). */
  current_position?: number | null;
}

export interface SessionProgress {
  session: number;
  reader: number;
  reader_username: string;
  arm: string;
  period: number;
  cases_done: number;
  cases_total: number;
  started_at: string | null;
  completed_at: string | null;
}

export interface Member {
  id: number;
  user: number;
  username: string;
  first_name: string;
  last_name: string;
  role: string;
}

export interface StudyReader {
  user: number;
  username: string;
  position: number;
  group: number;
}

/** A frame or an examination offered as a case: the records API's row, with the reference value it
 * was found by (the frame's own reference label, else its examination's). */
export interface CaseCandidate {
  id: number;
  reference: string;
  description: string;
}

export interface CaseInput {
  frame?: number;
  examination?: number;
  is_training: boolean;
}

// --- Results (studies/results.py study_results) ---------------------------------------------------

/** A Wilson proportion; value and interval are null (NaN on the server) with a reason. */
export interface Proportion {
  value: number | null;
  ci_low: number | null;
  ci_high: number | null;
  numerator: number;
  denominator: number;
  method?: string;
  reason: string;
}

export interface Auc {
  auc: number | null;
  se: number | null;
  ci_low: number | null;
  ci_high: number | null;
  n_positive: number;
  n_negative: number;
  method: string;
}

export interface Roc {
  fpr: number[];
  tpr: number[];
  thresholds: (number | null)[];
}

export interface ReaderAccuracy {
  reader: string;
  n_cases: number;
  true_positive?: number;
  false_positive?: number;
  true_negative?: number;
  false_negative?: number;
  sensitivity?: Proportion;
  specificity?: Proportion;
  accuracy: Proportion;
  auc?: Auc | null;
  auc_reason?: string;
  roc?: Roc | null;
}

export interface BootstrapInterval {
  estimate: number | null;
  ci_low: number | null;
  ci_high: number | null;
  se?: number | null;
  n_resamples?: number;
  n_valid?: number;
  reason: string;
}

export interface Pooled {
  n_readings: number;
  true_positive?: number;
  false_positive?: number;
  true_negative?: number;
  false_negative?: number;
  sensitivity?: Proportion;
  specificity?: Proportion;
  accuracy: Proportion;
  bootstrap: Record<string, BootstrapInterval> | null;
  bootstrap_reason: string;
}

export interface FleissKappa {
  kappa: number | null;
  ci_low: number | null;
  ci_high: number | null;
  p_value: number | null;
  n_items: number;
  n_raters: number;
  reason: string;
}

export interface KrippendorffAlpha {
  alpha: number | null;
  reason: string;
}

export interface PairwiseCohen {
  raters: string[];
  kappa: (number | null)[][];
  n_items: number[][];
  mean_kappa: number | null;
  reason: string;
}

export interface Agreement {
  fleiss: FleissKappa | null;
  krippendorff: KrippendorffAlpha | null;
  pairwise_cohen: PairwiseCohen | null;
  reason: string;
}

export interface CohenKappa {
  rater_a: string;
  rater_b: string;
  kappa: number | null;
  ci_low: number | null;
  ci_high: number | null;
  n_items: number;
  reason: string;
}

export interface ReadingTime {
  n: number;
  median_ms: number | null;
  q1_ms: number | null;
  q3_ms: number | null;
  mean_ms: number | null;
  reason: string;
}

export interface ConditionResult {
  key: string;
  arm: string;
  phase: string;
  assistance: Assistance;
  sequential: boolean;
  ai_shown: boolean;
  n_readings: number;
  n_readers: number;
  n_cases: number;
  readers: ReaderAccuracy[];
  pooled: Pooled;
  agreement: Agreement;
  ai_agreement: { readers: CohenKappa[]; n_cases_with_ai: number; reason: string } | null;
  time: ReadingTime;
}

export interface MrmcTest {
  name: string;
  effect: number | null;
  se: number | null;
  ci_low: number | null;
  ci_high: number | null;
  statistic_name: string;
  statistic: number | null;
  df1: number | null;
  df2: number | null;
  p_value: number | null;
  reason: string;
}

/** studies.mrmc's result, or only a reason where it could not be computed. */
export interface MrmcResult {
  reason?: string;
  effect?: number;
  effect_label?: string;
  modalities?: string[];
  modality_means?: number[];
  n_cases?: number;
  rrrc?: MrmcTest;
}

export interface Comparison {
  key: string;
  with_ai: string;
  without_ai: string;
  fleiss_kappa_difference: BootstrapInterval;
  mrmc: Record<string, MrmcResult>;
}

export interface SwitchCounts {
  n_cases: number;
  changed: number;
  n_correct_before: number;
  n_wrong_before: number;
  correct_to_wrong: number;
  wrong_to_correct: number;
  correct_to_wrong_rate: number | null;
  wrong_to_correct_rate: number | null;
  n_with_ai_answer: number;
  n_disagreeing_with_ai_before: number;
  switched_to_ai: number;
  switched_to_ai_rate: number | null;
  switched_away_from_ai: number;
}

export interface ResultsQuestion {
  key: string;
  name: string;
  choices: string[];
  ask_confidence: boolean;
  has_ai: boolean;
}

export interface StudyResults {
  study: { id: number; name: string; design: Design; status: string; locked: boolean; washout_days: number; case_unit: CaseUnit };
  parameters: { question: string; positive: string | null; resamples: number; seed: number; level: number };
  questions: ResultsQuestion[];
  question: {
    key: string;
    name: string;
    kind: string;
    choices: string[];
    positive: string | null;
    analysis: "binary" | "multiclass";
    ask_confidence: boolean;
    rating_scale: string;
    reason: string;
  };
  cases: {
    analysed: number;
    training_excluded: number;
    without_reference: number;
    patients: number;
    positive: number | null;
    negative: number | null;
  };
  readers: { reader: string; position: number; group: number }[];
  conditions: ConditionResult[];
  comparisons: Comparison[];
  automation_bias: { arm: string; readers: (SwitchCounts & { reader: string })[]; pooled: SwitchCounts }[];
  methods: string;
  reasons: string[];
}

export interface ResultsQuery {
  question?: string;
  positive?: string | null;
  resamples?: number;
  /** As written: a seed may be beyond what a JavaScript number holds exactly. */
  seed?: string | null;
}

export function resultsPath(study: number, query: ResultsQuery): string {
  const params = new URLSearchParams();
  if (query.question) params.set("question", query.question);
  if (query.positive) params.set("positive", query.positive);
  if (query.resamples) params.set("resamples", String(query.resamples));
  if (query.seed) params.set("seed", query.seed);
  const search = params.toString();
  return `/api/studies/${study}/results/${search ? `?${search}` : ""}`;
}

interface FrameRow {
  id: number;
  examination: number;
  source_name: string;
  video: number | null;
  index_in_video: number | null;
}

interface ExaminationRow {
  id: number;
  patient: number;
  code: string;
  anatomical_site: string;
}

/** Frames (or examinations) of the project whose reference (own, or the examination's) is one of
 * `values`: the cases a study's questions can take their reference from. Each is listed once, with
 * the first value it was found by. */
async function caseCandidates(project: number, unit: CaseUnit, values: readonly string[]): Promise<CaseCandidate[]> {
  const seen = new Map<number, CaseCandidate>();
  for (const value of values) {
    const query = `project=${project}&reference_label=${encodeURIComponent(value)}&page_size=1000`;
    if (unit === "frame") {
      for (const frame of await all<FrameRow>(`/api/frames/?${query}`)) {
        if (seen.has(frame.id)) continue;
        const where = frame.index_in_video === null ? "" : ` #${frame.index_in_video}`;
        seen.set(frame.id, { id: frame.id, reference: value, description: `${frame.source_name}${where} · examination ${frame.examination}` });
      }
    } else {
      for (const examination of await all<ExaminationRow>(`/api/examinations/?${query}`)) {
        if (seen.has(examination.id)) continue;
        const site = examination.anatomical_site ? ` · ${examination.anatomical_site}` : "";
        seen.set(examination.id, { id: examination.id, reference: value, description: `${examination.code}${site} · patient ${examination.patient}` });
      }
    }
  }
  return [...seen.values()].sort((a, b) => a.id - b.id);
}

/** A JSON call whose body and answer stay text, for integers beyond 2^53 (ApiError at >= 400). */
async function exchangeText(method: string, path: string, body?: string): Promise<{ text: string; body: unknown }> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, { method, credentials: "same-origin", headers, body });
  } catch (error) {
    throw new NetworkError(error instanceof Error ? error.message : String(error));
  }
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON (e.g. a proxy's error page): ApiError shows the status.
  }
  if (response.status >= 400) throw new ApiError(response.status, parsed);
  return { text, body: parsed };
}

/** The study, and its seed exactly as the server wrote it: a drawn seed has up to 62 bits, more than
 * a JavaScript number holds, and the seed is what reproduces the schedule. */
async function getExact(id: number): Promise<{ study: Study; seed: string }> {
  const { text, body } = await exchangeText("GET", `/api/studies/${id}/`);
  const study = body as Study;
  return { study, seed: exactInteger(text, "seed") ?? String(study.seed) };
}

/** A new draft; `seed` (digits, to reproduce a schedule) goes into the body as written. */
async function create(project: number, settings: StudySettings, seed: string | null): Promise<Study> {
  const json = JSON.stringify({ project, ...settings });
  const { body } = await exchangeText("POST", "/api/studies/", seed === null ? json : withExactInteger(json, "seed", seed));
  return body as Study;
}

export const studyApi = {
  getExact,
  list: (project: number) => all<Study>(`/api/studies/?project=${project}`),
  get: (id: number) => get<Study>(`/api/studies/${id}/`),
  create,
  update: (id: number, settings: StudySettings) => request<Study>("PATCH", `/api/studies/${id}/`, settings),
  setQuestions: (id: number, questions: { task: string; ask_confidence: boolean }[]) =>
    request<Study>("PUT", `/api/studies/${id}/questions/`, { questions }),
  setArms: (id: number, arms: StudyArm[]) => request<Study>("PUT", `/api/studies/${id}/arms/`, { arms }),
  setReaders: (id: number, readers: { user: number; group: number }[]) =>
    request<StudyReader[]>("PUT", `/api/studies/${id}/readers/`, { readers }),
  addCases: (id: number, cases: CaseInput[]) => request<unknown[]>("POST", `/api/studies/${id}/cases/`, { cases }),
  open: (id: number) => request<Study>("POST", `/api/studies/${id}/open/`),
  lock: (id: number) => request<Study>("POST", `/api/studies/${id}/lock/`),
  sessions: (id: number) => get<ReadingSession[]>(`/api/studies/${id}/sessions/`),
  progress: (id: number) => get<SessionProgress[]>(`/api/studies/${id}/progress/`),
  results: (id: number, query: ResultsQuery) => get<StudyResults>(resultsPath(id, query)),
  csvPath: (id: number) => `/api/studies/${id}/readings.csv`,
  /** The caller's own reading sessions, in every study they read in. */
  mySessions: () => all<ReadingSession>("/api/reading-sessions/"),
  members: (project: number) => all<Member>(`/api/projects/${project}/members/?page_size=1000`),
  caseCandidates,
};
