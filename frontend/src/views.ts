// Login, project list and a project's task picker (with the review of disagreements for the
// project's adjudicators, its reader studies, and model training for coordinators and admins).

import { ApiError, api, type Me } from "./api";
import { projectAi } from "./classify";
import { h, mount } from "./dom";
import { canAdjudicate } from "./review";
import { projectStudiesSection } from "./studies";
import { TRAINING_ROLES } from "./trainingdata";

const ROLE_NAMES: Record<string, string> = {
  reader: "Reader",
  reviewer: "Reviewer",
  coordinator: "Coordinator",
  data_manager: "Data manager",
  admin: "Admin",
};

export function loginView(root: HTMLElement, next: string, done: (user: Me) => void): void {
  const username = h("input", { name: "username", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error login-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "login",
      onsubmit: async (event: Event) => {
        event.preventDefault();
        error.hidden = true;
        submit.disabled = true;
        try {
          // The page set the CSRF cookie; /me sets it too, in case the page came from a cache.
          if (!document.cookie.includes("csrftoken=")) await api.me().catch(() => undefined);
          done(await api.login(username.value, password.value));
        } catch (failure) {
          error.textContent =
            failure instanceof ApiError ? failure.message : "The server could not be reached. Try again.";
          error.hidden = false;
          password.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", {}, "CLEAR"),
    h("p", { class: "muted" }, "Endomicroscopy annotation and review"),
    h("label", {}, "Username", username),
    h("label", {}, "Password", password),
    error,
    submit,
  );
  mount(root, h("div", { class: "login-page", "data-next": next }, form));
  username.focus();
}

export async function projectsView(root: HTMLElement): Promise<void> {
  document.title = "Projects · CLEAR";
  mount(root, h("p", { class: "muted" }, "Loading projects…"));
  const projects = await api.projects();
  mount(
    root,
    h("h1", {}, "Your projects"),
    projects.length === 0
      ? h("p", { class: "muted" }, "You are not a member of any project yet.")
      : h(
          "ul",
          { class: "cards" },
          projects.map((project) =>
            h(
              "li",
              {},
              h(
                "a",
                { class: "card", href: `/projects/${project.id}`, "data-route": "", "data-project": project.id },
                h("span", { class: "card-title" }, project.name),
                h("span", { class: "badge" }, ROLE_NAMES[project.role ?? ""] ?? project.role ?? "member"),
                project.description ? h("span", { class: "muted small" }, project.description) : null,
              ),
            ),
          ),
        ),
  );
  root.querySelector<HTMLAnchorElement>("a.card")?.focus();
}

export async function projectView(root: HTMLElement, id: number): Promise<void> {
  mount(root, h("p", { class: "muted" }, "Loading project…"));
  let project;
  let tasks;
  try {
    [project, tasks] = await Promise.all([api.project(id), api.tasks(id)]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      document.title = "Not found · CLEAR";
      mount(
        root,
        h(
          "div",
          { class: "center not-found", "data-state": "not-found", role: "alert" },
          h("h1", {}, "Not found"),
          h("p", {}, "This project does not exist, or you are not a member of it."),
          h("a", { href: "/", "data-route": "" }, "Back to your projects"),
        ),
      );
      return;
    }
    throw error;
  }
  document.title = `${project.name} · CLEAR`;
  const active = tasks.filter((task) => task.is_active);
  // Reviewers, coordinators and admins (a superuser is "admin") review where annotators disagree; the
  // review API refuses everyone else (403), so readers are not offered the link.
  const reviews = canAdjudicate(project.role);
  mount(
    root,
    h("p", {}, h("a", { href: "/", "data-route": "" }, "← Projects")),
    h("h1", {}, project.name, " ", h("span", { class: "badge" }, ROLE_NAMES[project.role ?? ""] ?? "member")),
    project.description ? h("p", { class: "muted" }, project.description) : null,
    // Only for members who may see model output here (the classify API refuses the others).
    projectAi(project).prediction
      ? h("p", {}, h("a", { class: "classify-link", href: `/classify/${project.id}`, "data-route": "" }, "Classify an image with the project's models"))
      : null,
    // Coordinators and admins train and promote models (the training API refuses everyone else).
    TRAINING_ROLES.has(project.role ?? "")
      ? h("p", {}, h("a", { class: "training-link", href: `/training/${project.id}`, "data-route": "" }, "Model training"))
      : null,
    h("h2", {}, "Label a task"),
    active.length === 0
      ? h("p", { class: "muted" }, "This project has no active label task yet.")
      : h(
          "ul",
          { class: "cards" },
          active.map((task) =>
            h(
              "li",
              { class: "task-item" },
              h(
                "a",
                { class: "card", href: `/label/${project.id}/${task.id}`, "data-route": "", "data-task": task.id },
                h("span", { class: "card-title" }, task.name),
                task.description ? h("span", { class: "muted small" }, task.description) : null,
                h(
                  "span",
                  { class: "chips" },
                  task.choices
                    .filter((choice) => choice.is_active)
                    .map((choice) =>
                      h(
                        "span",
                        { class: "chip" },
                        h("span", { class: "swatch", style: { background: choice.color } }),
                        choice.label,
                        choice.hotkey ? h("kbd", {}, choice.hotkey) : null,
                      ),
                    ),
                ),
              ),
              reviews
                ? h(
                    "a",
                    {
                      class: "review-link",
                      href: `/review/${project.id}/${task.id}`,
                      "data-route": "",
                      "data-review-task": task.id,
                    },
                    "Review disagreements",
                  )
                : null,
            ),
          ),
        ),
    // Loads itself: the studies it manages (coordinators, admins) and the caller's reading sessions.
    projectStudiesSection(project),
  );
  root.querySelector<HTMLAnchorElement>("a.card")?.focus();
}
