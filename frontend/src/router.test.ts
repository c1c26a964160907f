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
  });

  it("anything else is not found", () => {
    for (const path of ["/review/3", "/review/x/4", "/review/3/4/5", "/label/3", "/reviews/3/4", "/classify/x", "/classify/3/4"]) {
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
