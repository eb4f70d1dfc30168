#!/usr/bin/env node
// Generates src/api/schema.d.ts from the management API's OpenAPI document.
//
//   node scripts/gen-api.mjs          write openapi.json (gitignored) and src/api/schema.d.ts
//   node scripts/gen-api.mjs --check  fail (exit 1) when the committed schema.d.ts differs
//
// The document comes from the Python app itself (`python -m api.openapi` in the repo
// root). Override the interpreter with LECTR_PYTHON.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const here = dirname(fileURLToPath(import.meta.url));
const dashboard = resolve(here, "..");
const repo = resolve(dashboard, "..");
const python = process.env.LECTR_PYTHON ?? resolve(repo, ".venv/bin/python");
const check = process.argv.includes("--check");
const target = resolve(dashboard, "src/api/schema.d.ts");

function run(args) {
  return execFileSync(python, args, {
    cwd: repo,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
}

function dumpDocument() {
  if (!existsSync(python)) {
    throw new Error(`python not found at ${python} (set LECTR_PYTHON)`);
  }
  const doc = JSON.parse(run(["-m", "api.openapi"]));
  // The version string is not part of the types; pin it so the output does not churn.
  if (doc.info) doc.info.version = "0.0.0";
  return doc;
}

const doc = dumpDocument();
writeFileSync(resolve(dashboard, "openapi.json"), JSON.stringify(doc, null, 2) + "\n");

const ast = await openapiTS(doc, { alphabetize: false, exportType: false });
const banner =
  "/**\n * Generated from the Lectr management API's OpenAPI document by scripts/gen-api.mjs\n" +
  " * (npm run gen:api). Do not edit by hand.\n */\n\n";
const output = banner + astToString(ast);

if (check) {
  const current = existsSync(target) ? readFileSync(target, "utf8") : "";
  if (current !== output) {
    console.error(
      "src/api/schema.d.ts is out of date with the API's OpenAPI document: run `npm run gen:api` and commit it.",
    );
    process.exit(1);
  }
  console.log("src/api/schema.d.ts is up to date");
} else {
  writeFileSync(target, output);
  console.log(`wrote ${target}`);
}
