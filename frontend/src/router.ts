// Client-side routes (Django answers each of these paths with the app's page, see frontend/urls.py).

export type Route =
  | { name: "login"; next: string }
  | { name: "projects" }
  | { name: "project"; project: number }
  | { name: "workspace"; project: number; task: number }
  | { name: "review"; project: number; task: number }
  | { name: "classify"; project: number }
  | { name: "studyNew"; project: number }
  | { name: "study"; study: number }
  | { name: "read"; session: number }
  | { name: "training"; project: number }
  | { name: "trainingRun"; project: number; run: number }
  | { name: "notFound" };

export function parseRoute(pathname: string, search: string): Route {
  const path = pathname.replace(/\/+$/, "") || "/";
  const params = new URLSearchParams(search);
  if (path === "/login") return { name: "login", next: safeNext(params.get("next")) };
  if (path === "/" || path === "/projects") return { name: "projects" };
  let match = /^\/projects\/(\d+)$/.exec(path);
  if (match) return { name: "project", project: Number(match[1]) };
  match = /^\/label\/(\d+)\/(\d+)$/.exec(path);
  if (match) return { name: "workspace", project: Number(match[1]), task: Number(match[2]) };
  match = /^\/review\/(\d+)\/(\d+)$/.exec(path);
  if (match) return { name: "review", project: Number(match[1]), task: Number(match[2]) };
  match = /^\/classify\/(\d+)$/.exec(path);
  if (match) return { name: "classify", project: Number(match[1]) };
  match = /^\/studies\/new\/(\d+)$/.exec(path);
  if (match) return { name: "studyNew", project: Number(match[1]) };
  match = /^\/studies\/(\d+)$/.exec(path);
  if (match) return { name: "study", study: Number(match[1]) };
  match = /^\/read\/(\d+)$/.exec(path);
  if (match) return { name: "read", session: Number(match[1]) };
  match = /^\/training\/(\d+)$/.exec(path);
  if (match) return { name: "training", project: Number(match[1]) };
  match = /^\/training\/(\d+)\/(\d+)$/.exec(path);
  if (match) return { name: "trainingRun", project: Number(match[1]), run: Number(match[2]) };
  return { name: "notFound" };
}

/** Only a path of this app may follow the login (never another site). */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  return next;
}

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

/** Links inside the app navigate without reloading the page. */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    const link = (event.target as Element).closest("a");
    if (!link || link.target || link.origin !== location.origin || !link.hasAttribute("data-route")) return;
    event.preventDefault();
    navigate(link.pathname + link.search);
  });
}
