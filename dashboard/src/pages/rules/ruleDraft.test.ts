import { describe, expect, it } from "vitest";
import {
  EMPTY_DRAFT,
  createBody,
  describeMatch,
  describeTarget,
  draftFromQuery,
  dryRunBody,
  moved,
  patchBody,
  type Rule,
} from "./ruleDraft";

const RULE: Rule = {
  id: "r1",
  name: "r",
  priority: 0,
  enabled: true,
  match_feature: null,
  match_task: null,
  match_provider: null,
  match_model: null,
  target_provider: "groq",
  target_model: null,
  created_at: "2026-11-30T10:00:00Z",
  updated_at: "2026-11-30T10:00:00Z",
};

describe("ruleDraft", () => {
  it("moves an item", () => {
    expect(moved(["a", "b", "c"], 0, 2)).toEqual(["b", "c", "a"]);
    expect(moved(["a", "b", "c"], 2, 0)).toEqual(["c", "a", "b"]);
    expect(moved(["a", "b", "c"], 1, 1)).toEqual(["a", "b", "c"]);
  });

  it("pre-fills only with new=1, and only known providers", () => {
    expect(draftFromQuery(new URLSearchParams("feature=x"))).toBeNull();
    const draft = draftFromQuery(new URLSearchParams("new=1&feature=%20chat%20&provider=nope&target_provider=mistral"));
    expect(draft).toEqual({ ...EMPTY_DRAFT, match_feature: "chat", target_provider: "mistral" });
  });

  it("trims text and sends empty conditions as null", () => {
    const body = createBody({ ...EMPTY_DRAFT, name: "  n ", match_model: "  ", target_model: " m ", priority: " 7 " });
    expect(body).toMatchObject({ name: "n", match_model: null, target_model: "m", priority: 7 });
  });

  it("leaves the priority out of a PATCH when none is typed", () => {
    expect(patchBody({ ...EMPTY_DRAFT, name: "n", target_model: "m" })).not.toHaveProperty("priority");
    expect(patchBody({ ...EMPTY_DRAFT, name: "n", target_model: "m", priority: "3" })).toHaveProperty("priority", 3);
  });

  it("previews an edited rule in its own place, naming the rule it replaces", () => {
    expect(dryRunBody({ ...EMPTY_DRAFT, name: "n", target_model: "m" }, null).priority).toBeNull();
    const edit = dryRunBody({ ...EMPTY_DRAFT, name: "n", target_model: "m" }, { ...RULE, priority: 4 });
    expect(edit).toMatchObject({ priority: 4, replaces: RULE.id });
    expect(dryRunBody({ ...EMPTY_DRAFT, name: "n", target_model: "m", priority: "0" }, RULE).priority).toBe(0);
    expect(dryRunBody({ ...EMPTY_DRAFT, name: "n", target_model: "m" }, null)).not.toHaveProperty("replaces");
  });

  it("describes conditions and targets in words", () => {
    expect(describeMatch(RULE)).toBe("every request");
    expect(describeTarget(RULE)).toBe("groq / same model");
  });
});
