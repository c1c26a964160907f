// CLEAR's browser app: login, the user's projects, a project's tasks, the labelling workspace, the
// review of disagreements, reader studies and model training.

import "./styles.css";
import { ApiError, api, type Me } from "./api";
import { classifyView } from "./classify";
import { h, mount } from "./dom";
import { ReaderPage } from "./reader";
import { REVIEW_STATUSES, type ReviewStatus } from "./review";
import { ReviewPage } from "./reviewpage";
import { interceptLinks, navigate, parseRoute, type Route } from "./router";
import { studyNewView, studyView } from "./studies";
import { trainingView } from "./trainingform";
import { TrainingRunPage } from "./trainingrun";
import { loginView, projectView, projectsView } from "./views";
import { Workspace } from "./workspace";

const root = document.getElementById("app")!;
let me: Me | null | undefined;
/** The page that listens to keys, saves or polls (workspace, review, reading, a training run),
 * disposed when leaving it. */
let page: Workspace | ReviewPage | ReaderPage | TrainingRunPage | null = null;
let renderCount = 0;

async function currentUser(): Promise<Me | null> {
  if (me !== undefined) return me;
  try {
    me = await api.me();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) me = null;
    else throw error;
  }
  return me;
}

function header(user: Me): HTMLElement {
  return h(
    "header",
    { class: "app-header" },
    h("a", { class: "brand", href: "/", "data-route": "" }, "CLEAR"),
    h("span", { class: "spacer" }),
    h("span", { class: "user muted", "data-user": user.username }, user.username),
    h(
      "button",
      {
        class: "link logout",
        onclick: async () => {
          await api.logout().catch(() => undefined);
          me = null;
          navigate("/login", true);
        },
      },
      "Sign out",
    ),
  );
}

async function render(): Promise<void> {
  const ticket = ++renderCount;
  page?.dispose();
  page = null;
  const route: Route = parseRoute(location.pathname, location.search);
  if (route.name === "login") {
    document.title = "Sign in · CLEAR";
    loginView(root, route.next, (user) => {
      me = user;
      navigate(route.next, true);
    });
    return;
  }
  const user = await currentUser();
  if (ticket !== renderCount) return;
  if (!user) {
    navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
    return;
  }
  const content = h("div", { class: "content" });
  mount(root, h("div", { class: "app" }, header(user), content));
  switch (route.name) {
    case "projects":
      return projectsView(content);
    case "project":
      return projectView(content, route.project);
    case "workspace": {
      const prefetch = new URLSearchParams(location.search).get("prefetch") !== "0";
      const workspace = new Workspace(content, { project: route.project, task: route.task, prefetch });
      page = workspace;
      return workspace.start();
    }
    case "review": {
      const wanted = new URLSearchParams(location.search).get("status");
      const status = REVIEW_STATUSES.find((candidate) => candidate === wanted) ?? ("open" satisfies ReviewStatus);
      const review = new ReviewPage(content, { project: route.project, task: route.task, status });
      page = review;
      return review.start();
    }
    case "classify":
      return classifyView(content, route.project);
    case "studyNew":
      return studyNewView(content, route.project);
    case "study":
      return studyView(content, route.study);
    case "read": {
      const reader = new ReaderPage(content, { session: route.session });
      page = reader;
      return reader.start();
    }
    case "training":
      return trainingView(content, route.project);
    case "trainingRun": {
      const run = new TrainingRunPage(content, { project: route.project, run: route.run });
      page = run;
      return run.start();
    }
    case "notFound":
      document.title = "Not found · CLEAR";
      mount(
        content,
        h(
          "div",
          { class: "center not-found", "data-state": "not-found", role: "alert" },
          h("h1", {}, "Not found"),
          h("a", { href: "/", "data-route": "" }, "Back to your projects"),
        ),
      );
  }
}

function renderSafely(): void {
  render().catch((error: unknown) => {
    console.error(error);
    mount(
      root,
      h(
        "div",
        { class: "center error", role: "alert" },
        h("h1", {}, "Something went wrong"),
        h("p", {}, error instanceof Error ? error.message : String(error)),
        h("button", { onclick: () => location.reload() }, "Reload"),
      ),
    );
  });
}

interceptLinks(root);
window.addEventListener("popstate", renderSafely);
renderSafely();
