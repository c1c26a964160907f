import { describe, expect, it } from "vitest";
import { parseRoute, safeNext } from "./router";

describe("parseRoute", () => {
  it("knows the app's pages", () => {
    expect(parseRoute("/", "")).toEqual({ name: "projects" });
    expect(parseRoute("/projects/", "")).toEqual({ name: "projects" });
    expect(parseRoute("/projects/3", "")).toEqual({ name: "project", project: 3 });
    expect(parseRoute("/label/3/4", "?prefetch=0")).toEqual({ name: "workspace", project: 3, task: 4 });
    expect(parseRoute("/review/3/4/", "")).toEqual({ name: "review", project: 3, task: 4 });
    expect(parseRoute("/login", "?next=/review/3/4")).toEqual({ name: "login", next: "/review/3/4" });
    expect(parseRoute("/classify/7", "")).toEqual({ name: "classify", project: 7 });
    expect(parseRoute("/studies/new/7", "")).toEqual({ name: "studyNew", project: 7 });
    expect(parseRoute("/studies/12/", "")).toEqual({ name: "study", study: 12 });
    expect(parseRoute("/read/31", "")).toEqual({ name: "read", session: 31 });
    expect(parseRoute("/training/7", "")).toEqual({ name: "training", project: 7 });
    expect(parseRoute("/training/7/12/", "")).toEqual({ name: "trainingRun", project: 7, run: 12 });
  });

  it("anything else is not found", () => {
    for (const path of ["/review/3", "/review/x/4", "/review/3/4/5", "/label/3", "/reviews/3/4", "/classify/x", "/classify/3/4", "/studies", "/studies/new", "/studies/x", "/read/3/4", "/read", "/training", "/training/x", "/training/3/x", "/training/3/4/5"]) {
      expect(parseRoute(path, "")).toEqual({ name: "notFound" });
    }
  });
});

describe("safeNext", () => {
  it("follows the login only to a path of this app", () => {
    expect(safeNext("/review/1/2")).toBe("/review/1/2");
    expect(safeNext(null)).toBe("/");
    expect(safeNext("https://example.org/")).toBe("/");
    expect(safeNext("//example.org/")).toBe("/");
    expect(safeNext("/\\example.org")).toBe("/");
  });
});
