/**
 * kmq's benchmark: each case measured beside its baseline in the same run, medians of several
 * runs. Speed and memory targets are checked here, never in timed tests.
 *
 *   deno task bench [--runs N]
 *
 * Needs dist/kmq (deno task compile:offline) and a broker at KMQ_URL (default localhost).
 */
const ROOT = new URL("..", import.meta.url).pathname;
const URL_ = Deno.env.get("KMQ_URL") ?? "amqp://guest:guest@localhost:5672/";
const runsArg = Deno.args.indexOf("--runs");
const RUNS = runsArg >= 0 ? Number(Deno.args[runsArg + 1]) : 15;
const BIN = `${ROOT}dist/kmq`;
const BUN = `${ROOT}node_modules/.bin/bun`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function timeOnce(cmd: string, args: string[]): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    env: { KMQ_URL: URL_ },
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

/** Alternates the contenders run by run, so drift on the machine hits both alike. */
async function compare(contenders: Record<string, [string, string[]]>): Promise<Record<string, number>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (const [cmd, args] of Object.values(contenders)) await timeOnce(cmd, args); // warm caches
  for (let i = 0; i < RUNS; i++) {
    for (const [name, [cmd, args]] of Object.entries(contenders)) {
      times[name]!.push(await timeOnce(cmd, args));
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

async function purge(queue: string): Promise<void> {
  await new Deno.Command(BIN, {
    args: ["consume", "-e", "", "-q", queue, "--no-declare", "--idle-timeout", "0.3", "-o", "raw"],
    env: { KMQ_URL: URL_ },
    stdout: "null",
    stderr: "null",
  }).output();
}

try {
  await Deno.stat(BIN);
} catch {
  console.error("bench: dist/kmq is missing; run 'deno task compile:offline' first");
  Deno.exit(1);
}

/** The baseline compiled exactly as dist/kmq is, so the comparison is runtime for runtime. */
async function compileBaseline(script: string): Promise<string> {
  const out = `${await Deno.makeTempDir()}/baseline`;
  const r = await new Deno.Command(BUN, {
    args: [
      "build",
      "--compile",
      "--minify",
      "--bytecode",
      `${ROOT}scripts/baselines/${script}`,
      "--outfile",
      out,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`building ${script}: ${new TextDecoder().decode(r.stderr)}`);
  return out;
}

console.log(`kmq bench: ${RUNS} runs per contender, medians; broker ${URL_.replace(/:[^:@/]*@/, ":***@")}\n`);
console.log(`case 3: wall time of one produce "Hello World!" (connect, declare, publish, confirm, close)`);
const helloBin = await compileBaseline("publish_hello.ts");
const hello = await compare({
  "dist/kmq produce": [BIN, ["produce", "Hello World!"]],
  "amqp-client script (compiled)": [helloBin, []],
  "amqp-client script (bun)": [BUN, ["run", `${ROOT}scripts/baselines/publish_hello.ts`]],
  "amqp-client script (deno)": [
    `${ROOT}node_modules/.bin/deno`,
    ["run", "-A", "--quiet", `${ROOT}scripts/baselines/publish_hello.ts`],
  ],
});
const base = hello["amqp-client script (compiled)"]!;
for (const [name, ms] of Object.entries(hello)) {
  console.log(
    `  ${name.padEnd(30)} ${ms.toFixed(1).padStart(7)} ms  (${(ms / base).toFixed(2)}x the compiled script)`,
  );
}
await purge("queue");
