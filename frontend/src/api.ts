// Same-origin JSON calls to CLEAR's API with the session cookie and the CSRF token.

import type { AiVisibility, ClassifyResult, Prediction } from "./ai";
import type { QueueFrame, QueuePage } from "./queue";
import type { ReviewPage, ReviewStatus } from "./review";
import { NetworkError, type HttpAnswer, type Transport } from "./saves";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(ApiError.describe(status, body));
    this.name = "ApiError";
  }

  static describe(status: number, body: unknown): string {
    if (typeof body === "object" && body !== null) {
      const detail = (body as Record<string, unknown>).detail;
      if (typeof detail === "string") return detail;
      const first = Object.values(body as Record<string, unknown>)[0];
      if (Array.isArray(first) && typeof first[0] === "string") return first[0];
    }
    return `The server answered ${status}.`;
  }
}

export function csrfToken(): string {
  const match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
  return match ? decodeURIComponent(match[1]!) : "";
}

async function parse(response: Response): Promise<unknown> {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A request that resolves with whatever status came back; only a missing answer throws. */
export async function raw(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  const init: RequestInit = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...headers },
  };
  if (method !== "GET" && method !== "HEAD") {
    (init.headers as Record<string, string>)["X-CSRFToken"] = csrfToken();
  }
  if (body !== undefined) {
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new NetworkError(error instanceof Error ? error.message : String(error));
  }
  return { status: response.status, body: await parse(response) };
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const answer = await raw(method, path, body);
  if (answer.status >= 400) throw new ApiError(answer.status, answer.body);
  return answer.body as T;
}

export const get = <T>(path: string): Promise<T> => request<T>("GET", path);

// --- Types of the answers the app reads ----------------------------------------------------------

export interface ProjectRole {
  id: number;
  slug: string;
  name: string;
  role: string | null;
}

export interface Me {
  id: number;
  username: string;
  first_name: string;
  last_name: string;
  is_staff: boolean;
  is_superuser: boolean;
  projects: ProjectRole[];
}

export interface Project {
  id: number;
  name: string;
  slug: string;
  description: string;
  /** What readers see of model output: "hidden" | "prediction" | "prediction_and_cam". */
  ai_assistance?: string;
  role: string | null;
}

export interface Choice {
  id: number;
  value: string;
  label: string;
  order: number;
  color: string;
  hotkey: string;
  is_active: boolean;
}

export interface LabelTask {
  id: number;
  project: number;
  key: string;
  name: string;
  description: string;
  kind: "nominal" | "ordinal";
  order: number;
  is_active: boolean;
  choices: Choice[];
}

export interface Page<T> {
  next: string | null;
  previous: string | null;
  results: T[];
}

export interface FrameContext {
  frame: number;
  patient_pseudonym: string;
  examination: number;
  examination_code: string;
  anatomical_site: string;
  device: string;
  video: number | null;
  video_name: string | null;
  index_in_video: number | null;
  time_s: number | null;
  /** What model output the caller may see in the frame's project. */
  ai: AiVisibility;
  /** The active model versions' predictions (empty where hidden). */
  predictions: Prediction[];
  /** Tasks with an active model in the project (empty where predictions are hidden). */
  active_model_tasks: string[];
}

export interface ModelVersion {
  id: number;
  project: number;
  task: number;
  task_key: string;
  name: string;
  status: "candidate" | "active" | "retired";
}

export interface TaskGate {
  id: number;
  project: number;
  task: number;
  task_key: string;
  gate_task: number;
  gate_task_key: string;
  diagnostic_values: string[];
}

export type { QueueFrame, QueuePage };

/** Every page of a cursor-paginated list. */
export async function all<T>(path: string): Promise<T[]> {
  const items: T[] = [];
  let next: string | null = path;
  while (next) {
    const page: Page<T> = await get<Page<T>>(next);
    items.push(...page.results);
    next = page.next;
  }
  return items;
}

export const api = {
  me: () => get<Me>("/api/auth/me/"),
  login: (username: string, password: string) => request<Me>("POST", "/api/auth/session/", { username, password }),
  logout: () => request<null>("DELETE", "/api/auth/session/"),
  projects: () => all<Project>("/api/projects/"),
  project: (id: number) => get<Project>(`/api/projects/${id}/`),
  tasks: (project: number) => all<LabelTask>(`/api/label-tasks/?project=${project}&is_active=true`),
  /** Inactive tasks too: their disagreements can still be looked at on the review page. */
  allTasks: (project: number) => all<LabelTask>(`/api/label-tasks/?project=${project}`),
  queue: (project: number, task: number, limit: number) =>
    get<QueuePage>(`/api/projects/${project}/queue/?task=${task}&limit=${limit}`),
  review: (project: number, task: number, status: ReviewStatus, limit: number) =>
    get<ReviewPage>(`/api/projects/${project}/review/?task=${task}&status=${status}&limit=${limit}`),
  context: (frames: readonly number[]) =>
    get<{ frames: FrameContext[] }>(`/api/label-context/?frames=${frames.join(",")}`),
  /** Predict one frame for one task now (a frame the active model has not scored yet). */
  predict: (frame: number, task: string) => raw("POST", `/api/frames/${frame}/predict/`, { task }),
  activeModels: (project: number) => all<ModelVersion>(`/api/model-versions/?project=${project}&status=active`),
  taskGates: (project: number) => all<TaskGate>(`/api/task-gates/?project=${project}`),
  /** Classify an uploaded image (multipart: `image`, `task`); nothing is stored on the server. */
  classify: async (project: number, image: Blob, task: string): Promise<HttpAnswer & { body: ClassifyResult | unknown }> => {
    const form = new FormData();
    form.append("image", image, image instanceof File ? image.name : "image.png");
    form.append("task", task);
    let response: Response;
    try {
      response = await fetch(`/api/projects/${project}/classify/`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: form,
      });
    } catch (error) {
      throw new NetworkError(error instanceof Error ? error.message : String(error));
    }
    return { status: response.status, body: await parse(response) };
  },
};

/** The annotation endpoint of one task, as the save manager's transport. */
export function annotationTransport(task: number): Transport {
  const url = (frame: number) => `/api/frames/${frame}/annotations/${task}/`;
  return {
    put: (frame, body, headers) => raw("PUT", url(frame), body, headers),
    delete: (frame, headers) => raw("DELETE", url(frame), undefined, headers),
  };
}

/** The adjudication endpoint of one task, as the save manager's transport (adjudications are changed,
 * never deleted, so delete is refused without asking the server). */
export function adjudicationTransport(task: number): Transport {
  const url = (frame: number) => `/api/frames/${frame}/adjudications/${task}/`;
  return {
    put: (frame, body, headers) => raw("PUT", url(frame), body, headers),
    delete: () => Promise.resolve({ status: 405, body: { detail: "An adjudication is changed, never deleted." } }),
  };
}
