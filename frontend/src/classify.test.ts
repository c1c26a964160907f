import { describe, expect, it } from "vitest";
import type { LabelTask } from "./api";
import { classifyTasks, projectAi } from "./classify";

function task(key: string, name = key): LabelTask {
  return { id: key.length, project: 1, key, name, description: "", kind: "nominal", order: 0, is_active: true, choices: [] };
}

describe("projectAi", () => {
  it("shows curators everything and readers what the project allows", () => {
    expect(projectAi({ role: "reviewer", ai_assistance: "hidden" })).toEqual({ prediction: true, cam: true });
    expect(projectAi({ role: "coordinator", ai_assistance: "hidden" })).toEqual({ prediction: true, cam: true });
    expect(projectAi({ role: "reader", ai_assistance: "hidden" })).toEqual({ prediction: false, cam: false });
    expect(projectAi({ role: "reader", ai_assistance: "prediction" })).toEqual({ prediction: true, cam: false });
    expect(projectAi({ role: "data_manager", ai_assistance: "prediction_and_cam" })).toEqual({ prediction: true, cam: true });
    expect(projectAi({ role: "reader" })).toEqual({ prediction: false, cam: false });
    expect(projectAi({ role: null, ai_assistance: "prediction_and_cam" })).toEqual({ prediction: false, cam: false });
  });
});

describe("classifyTasks", () => {
  it("offers the tasks with an active model, a gated one first", () => {
    const tasks = [task("quality"), task("site"), task("diagnosis"), task("notes")];
    const options = classifyTasks(tasks, new Set(["quality", "site", "diagnosis"]), new Set(["diagnosis"]));
    expect(options.map((option) => [option.key, option.gated])).toEqual([
      ["diagnosis", true],
      ["quality", false],
      ["site", false],
    ]);
    expect(classifyTasks(tasks, new Set(), new Set(["diagnosis"]))).toEqual([]);
  });
});
