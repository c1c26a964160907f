// Upload and classify (as the ENT study's app): the user picks or drops an image, chooses the task
// (a gated one first: quality decides, then the diagnosis), and gets the model's class, its
// probabilities, the gate's decision and the CAM over the image, with the workspace's colours and
// opacity slider. The image goes to the server in that one request and is not stored there; the page
// keeps it only in memory.

import { type AiVisibility, type ClassifyResult } from "./ai";
import { CamCanvas, loadCam, opacitySlider, predictionView, storedOpacity, storeOpacity, type SchemaLookup } from "./aiview";
import { ApiError, api, type LabelTask, type Project } from "./api";
import { h, mount } from "./dom";
import { pageState } from "./panels";
import { NetworkError } from "./saves";

const CURATOR_ROLES = new Set(["coordinator", "admin", "reviewer"]);

/** What the project shows the caller (the server decides; the page only hides what it may not use). */
export function projectAi(project: Pick<Project, "role"> & { ai_assistance?: string }): AiVisibility {
  if (project.role === null) return { prediction: false, cam: false };
  if (CURATOR_ROLES.has(project.role)) return { prediction: true, cam: true };
  return {
    prediction: project.ai_assistance === "prediction" || project.ai_assistance === "prediction_and_cam",
    cam: project.ai_assistance === "prediction_and_cam",
  };
}

export interface TaskOption {
  key: string;
  name: string;
  gated: boolean;
}

/** The tasks to offer: those with an active model, gated ones first (the two-stage pipeline). */
export function classifyTasks(tasks: readonly LabelTask[], activeTaskKeys: ReadonlySet<string>, gatedKeys: ReadonlySet<string>): TaskOption[] {
  return tasks
    .filter((task) => activeTaskKeys.has(task.key))
    .map((task) => ({ key: task.key, name: task.name, gated: gatedKeys.has(task.key) }))
    .sort((a, b) => Number(b.gated) - Number(a.gated));
}

export async function classifyView(root: HTMLElement, projectId: number): Promise<void> {
  mount(root, h("p", { class: "muted" }, "Loading…"));
  let project: Project & { ai_assistance?: string };
  let tasks: LabelTask[];
  try {
    [project, tasks] = await Promise.all([api.project(projectId), api.tasks(projectId)]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      mount(root, pageState("not-found", "Not found", "This project does not exist, or you are not a member of it."));
      return;
    }
    throw error;
  }
  const visibility = projectAi(project);
  if (!visibility.prediction) {
    mount(root, pageState("not-allowed", "Not available", "Model output is hidden from you in this project."));
    return;
  }
  document.title = `Classify an image · ${project.name} · CLEAR`;
  const [models, gates] = await Promise.all([api.activeModels(projectId), api.taskGates(projectId).catch(() => [])]);
  const options = classifyTasks(tasks, new Set(models.map((model) => model.task_key)), new Set(gates.map((gate) => gate.task_key)));
  new ClassifyPage(root, project, tasks, options, visibility).render();
}

class ClassifyPage {
  private file: File | null = null;
  private imageUrl: string | null = null;
  private readonly cam = new CamCanvas(storedOpacity());
  private readonly picture = h("img", { class: "classify-image", alt: "The image to classify" });
  private readonly result = h("div", { class: "classify-result", "aria-live": "polite" });
  private readonly taskSelect: HTMLSelectElement;
  private readonly input = h("input", { type: "file", accept: "image/*", class: "classify-file", hidden: true });
  private readonly drop: HTMLElement;
  private readonly submit = h("button", { class: "primary classify-submit", disabled: true }, "Classify");

  constructor(
    private readonly root: HTMLElement,
    private readonly project: Project,
    private readonly tasks: LabelTask[],
    private readonly options: TaskOption[],
    private readonly visibility: AiVisibility,
  ) {
    this.taskSelect = h(
      "select",
      { class: "classify-task", "aria-label": "Task" },
      options.map((option) => h("option", { value: option.key }, option.gated ? `${option.name} (quality first)` : option.name)),
    );
    this.drop = h(
      "div",
      {
        class: "classify-drop",
        tabindex: "0",
        role: "button",
        onclick: () => this.input.click(),
        onkeydown: (event: KeyboardEvent) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            this.input.click();
          }
        },
        ondragover: (event: DragEvent) => {
          event.preventDefault();
          this.drop.classList.add("over");
        },
        ondragleave: () => this.drop.classList.remove("over"),
        ondrop: (event: DragEvent) => {
          event.preventDefault();
          this.drop.classList.remove("over");
          const file = event.dataTransfer?.files[0];
          if (file) this.choose(file);
        },
      },
      "Drop an image here, or choose one (Enter)",
    );
    this.input.addEventListener("change", () => {
      const file = this.input.files?.[0];
      if (file) this.choose(file);
    });
    this.submit.addEventListener("click", () => void this.classify());
  }

  render(): void {
    mount(
      this.root,
      h("p", {}, h("a", { href: `/projects/${this.project.id}`, "data-route": "" }, `← ${this.project.name}`)),
      h("h1", {}, "Classify an image"),
      h(
        "p",
        { class: "privacy-note muted", "data-privacy": "" },
        "The image is sent once to the server to be classified and is not stored there (nor its result); it stays in this page only until you leave it.",
      ),
      this.options.length === 0
        ? h("p", { class: "muted classify-none" }, "No task of this project has an active model.")
        : h(
            "div",
            { class: "classify" },
            h("div", { class: "classify-main" }, this.drop, this.input, h("div", { class: "classify-view", hidden: true }, this.picture, this.cam.element)),
            h(
              "div",
              { class: "classify-side" },
              h("label", { class: "slider" }, h("span", {}, "Task"), this.taskSelect),
              this.submit,
              this.visibility.cam
                ? opacitySlider(storedOpacity(), (opacity) => {
                    storeOpacity(opacity);
                    this.cam.setOpacity(opacity);
                  })
                : null,
              this.result,
            ),
          ),
    );
  }

  private schema(): SchemaLookup {
    return {
      taskName: (key) => this.tasks.find((task) => task.key === key)?.name ?? key,
      choice: (key, value) => this.tasks.find((task) => task.key === key)?.choices.find((choice) => choice.value === value),
    };
  }

  private choose(file: File): void {
    this.file = file;
    if (this.imageUrl) URL.revokeObjectURL(this.imageUrl);
    this.imageUrl = URL.createObjectURL(file);
    this.picture.src = this.imageUrl;
    this.cam.setCam(null);
    const view = this.root.querySelector<HTMLElement>(".classify-view");
    if (view) view.hidden = false;
    this.drop.textContent = `${file.name} · drop or choose another image`;
    this.submit.disabled = false;
    mount(this.result);
    this.submit.focus();
  }

  private async classify(): Promise<void> {
    if (!this.file) return;
    this.submit.disabled = true;
    mount(this.result, h("div", { class: "muted", "data-state": "classifying" }, "Classifying…"));
    let answer;
    try {
      answer = await api.classify(this.project.id, this.file, this.taskSelect.value);
    } catch (error) {
      this.failed(error instanceof NetworkError ? "The server could not be reached. Try again." : String(error));
      return;
    } finally {
      this.submit.disabled = false;
    }
    if (answer.status !== 200) {
      this.failed(ApiError.describe(answer.status, answer.body));
      return;
    }
    const result = answer.body as ClassifyResult;
    mount(
      this.result,
      h(
        "div",
        { class: "model-prediction", "data-state": "done" },
        predictionView(result, this.schema(), true),
        h("div", { class: "muted small classify-elapsed" }, `${result.width}×${result.height} px · ${Math.round(result.elapsed_ms)} ms on the server`),
      ),
    );
    if (result.cam_png_base64 && this.visibility.cam) {
      this.cam.setCam(await loadCam(`data:image/png;base64,${result.cam_png_base64}`));
      this.cam.setVisible(true);
    } else {
      this.cam.setCam(null);
    }
  }

  private failed(message: string): void {
    mount(this.result, h("div", { class: "error", role: "alert", "data-state": "failed" }, message));
  }
}
