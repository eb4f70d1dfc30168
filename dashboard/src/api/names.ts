// Names the API knows: providers (the API refuses any other) and the task types the
// recommendations know (X-Lectr-Task may carry any other).
import type { Schemas } from "./types";

export type Provider = NonNullable<Schemas["RuleCreate"]["target_provider"]>;

export const PROVIDERS: readonly Provider[] = [
  "openai",
  "anthropic",
  "azure",
  "gemini",
  "groq",
  "mistral",
  "deepseek",
  "together",
  "xai",
];

export const TASK_TYPES = [
  "classification",
  "extraction",
  "summarisation",
  "generation",
  "reasoning",
] as const;
