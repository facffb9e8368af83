/** Writes docs/CLI.md from the command tables (src/cli/docs.ts). `--check`: exit 1 if it differs. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderDocs } from "../src/cli/docs.ts";

const path = join(import.meta.dir, "..", "docs", "CLI.md");
const text = await renderDocs();
if (process.argv.includes("--check")) {
  let old = "";
  try {
    old = readFileSync(path, "utf8");
  } catch {}
  if (old !== text) {
    console.error("docs/CLI.md is out of date: run bun scripts/cli-docs.ts");
    process.exit(1);
  }
} else {
  writeFileSync(path, text);
  console.log(`wrote ${path}`);
}
