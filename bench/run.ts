/**
 * `npm run bench`: every benchmark in turn, each against its own private daemon, each printing a
 * table (figure, baseline measured in the same run, ratio, target), then the results with the date
 * and machine written to bench/RESULTS.md (everything below the HISTORY marker there is kept).
 *
 *   bun bench/run.ts [--only=cli,persistent,session,output,load,fuzz,fleet,fleet-io] [--scale=0.2] [--seconds=20]
 *
 * --scale shrinks counts for a quick look; --seconds is the load benchmark's duration. Not run by
 * CI: numbers need a quiet machine.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { benchCli } from "./cli.ts";
import { benchFleet } from "./fleet.ts";
import { benchFleetIo } from "./fleet-io.ts";
import { benchFuzz } from "./fuzz.ts";
import { benchLoad } from "./load.ts";
import { benchOutput } from "./output.ts";
import { benchPersistent } from "./persistent.ts";
import { benchSession } from "./session.ts";
import { benchOptions, markdown, table, type BenchOptions, type BenchResult } from "./lib.ts";

const ALL: Array<[string, (o: BenchOptions) => Promise<BenchResult>]> = [
  ["cli", benchCli],
  ["persistent", benchPersistent],
  ["session", benchSession],
  ["output", benchOutput],
  ["load", benchLoad],
  ["fuzz", benchFuzz],
  ["fleet", benchFleet],
  ["fleet-io", benchFleetIo],
];
const HISTORY = "<!-- HISTORY: everything below this line is kept by bench/run.ts -->";

function machine(): string {
  const c = cpus();
  const py = Bun.spawnSync(["python3", "-c", "import sys; print(sys.version.split()[0], sys.executable)"], { stdout: "pipe" }).stdout.toString().trim();
  const kernel = Bun.spawnSync(["uname", "-sr"], { stdout: "pipe" }).stdout.toString().trim();
  return `${c.length} x ${c[0]?.model ?? "unknown cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${kernel}, bun ${Bun.version}, python ${py}`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = benchOptions(argv);
  const only = argv.find((a) => a.startsWith("--only="))?.slice(7).split(",");
  const results: BenchResult[] = [];
  const started = new Date();
  for (const [id, fn] of ALL) {
    if (only && !only.includes(id)) continue;
    process.stderr.write(`running ${id} ...\n`);
    try {
      const r = await fn(o);
      results.push(r);
      console.log(table(r));
    } catch (e) {
      const r: BenchResult = { id, title: `${id}: FAILED`, rows: [], notes: [String((e as Error).stack ?? e)] };
      results.push(r);
      console.log(table(r));
    }
  }
  const file = join(import.meta.dir, "RESULTS.md");
  const old = existsSync(file) ? readFileSync(file, "utf8") : "";
  const kept = old.includes(HISTORY) ? old.slice(old.indexOf(HISTORY) + HISTORY.length) : "\n";
  const load = uptimeLoad();
  const head = [
    "# Benchmark results",
    "",
    `Latest run: ${started.toISOString().slice(0, 16).replace("T", " ")} UTC, ${machine()}.`,
    `Options: scale ${o.scale}, load ${o.loadSeconds} s${only ? `, only ${only.join(",")}` : ""}. Load average at the end: ${load}.`,
    "Produced by `npm run bench` (bench/run.ts); every baseline was measured in the same run, on the same machine.",
    "",
    ...results.map((r) => markdown(r) + "\n"),
    HISTORY,
  ].join("\n");
  writeFileSync(file, head + kept);
  console.log(`\nwrote ${file}`);
}

function uptimeLoad(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

await main();
process.exit(0);
