/**
 * kmq's benchmark: each case measured beside its baselines in the same run, contenders
 * alternating run by run, medians quoted. Speed and memory targets are checked here, never in
 * timed tests.
 *
 *   deno task bench [--runs N] [--case 1,2,3,4,5,6] [--before PATH]
 *
 * Case 6 (input that attacks kmq's resources) compares dist/kmq with an earlier build given as
 * --before (e.g. the last release built with `deno task compile:offline` in a worktree).
 *
 * Needs dist/kmq (deno task compile:offline), amqp-publish (Debian's amqp-tools) and a broker
 * at KMQ_URL (default localhost). It uses (and purges) the tutorial's queue 'queue'.
 */
const ROOT = new URL("..", import.meta.url).pathname;
const URL_ = Deno.env.get("KMQ_URL") ?? "amqp://guest:guest@localhost:5672/";
const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const RUNS = Number(arg("--runs") ?? 5);
const CASES = new Set((arg("--case") ?? "1,2,3,4,5").split(","));
const BEFORE = arg("--before");
const BIN = `${ROOT}dist/kmq`;
const BUN = `${ROOT}node_modules/.bin/bun`;
const LINES = 200_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A command to time; `stdin` names a file fed to it. */
interface Contender {
  cmd: string;
  args: string[];
  stdin?: string;
}

async function timeOnce(c: Contender, expectFailure = false): Promise<number> {
  const started = performance.now();
  const child = new Deno.Command(c.cmd, {
    args: c.args,
    env: { KMQ_URL: URL_ },
    stdin: c.stdin ? "piped" : "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  if (c.stdin) (await Deno.open(c.stdin)).readable.pipeTo(child.stdin).catch(() => {});
  const out = await child.output();
  const ms = performance.now() - started;
  if (!out.success && !expectFailure) {
    throw new Error(`${c.cmd} ${c.args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

/** Alternates the contenders run by run, so drift on the machine hits all alike. */
async function compare(
  contenders: Record<string, Contender>,
  opts: {
    runs?: number;
    before?: () => Promise<void>;
    after?: () => Promise<void>;
    expectFailure?: boolean;
  } = {},
): Promise<Record<string, number>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let i = 0; i < (opts.runs ?? RUNS); i++) {
    for (const [name, c] of Object.entries(contenders)) {
      await opts.before?.();
      times[name]!.push(await timeOnce(c, opts.expectFailure));
      await opts.after?.();
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

function table(results: Record<string, number>, baseline: string, per?: number): void {
  const base = results[baseline]!;
  for (const [name, ms] of Object.entries(results)) {
    const rate = per ? `${Math.round(per / (ms / 1000)).toString().padStart(8)} msg/s  ` : "";
    const ratio = per ? (base / ms) : (ms / base);
    const what = per
      ? `${ratio.toFixed(2)}x the speed of ${baseline}`
      : `${ratio.toFixed(2)}x the time of ${baseline}`;
    console.log(`  ${name.padEnd(34)} ${ms.toFixed(1).padStart(9)} ms  ${rate}(${what})`);
  }
}

async function ctl(...args: string[]): Promise<void> {
  await new Deno.Command("rabbitmqctl", { args: ["-q", ...args], stdout: "null", stderr: "null" }).output();
}

const purge = () => ctl("purge_queue", "queue");

async function queueDepth(): Promise<number> {
  const out = await new Deno.Command("rabbitmqctl", { args: ["-q", "list_queues", "name", "messages"] })
    .output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith("queue\t"));
  return Number(line?.split("\t")[1] ?? -1);
}

/** Builds a baseline exactly as dist/kmq is built, so the comparison is runtime for runtime. */
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

try {
  await Deno.stat(BIN);
} catch {
  console.error("bench: dist/kmq is missing; run 'deno task compile:offline' first");
  Deno.exit(1);
}
// the tutorial topology, which every case uses
await new Deno.Command(BIN, { args: ["declare"], env: { KMQ_URL: URL_ } }).output();
await purge();
const tmp = await Deno.makeTempDir();
const linesFile = `${tmp}/lines.txt`;
await Deno.writeTextFile(
  linesFile,
  Array.from({ length: LINES }, (_, i) => `${String(i).padStart(15, "0")}\n`).join(""),
);
console.log(`kmq bench: ${RUNS} runs per contender, medians; broker ${URL_.replace(/:[^:@/]*@/, ":***@")}`);

if (CASES.has("1")) {
  console.log(`\ncase 1: ${LINES} 16-byte lines into the durable queue 'queue' (persistent)`);
  const script = await compileBaseline("publish_lines.ts");
  const r = await compare({
    "kmq produce --lines (confirmed)": { cmd: BIN, args: ["produce", "--lines"], stdin: linesFile },
    "amqp-publish -l -p (unconfirmed)": {
      cmd: "amqp-publish",
      args: ["-u", URL_.replace(/\/$/, ""), "-e", "test_exchange", "-r", "test", "-l", "-p"],
      stdin: linesFile,
    },
    "amqp-client script (unconfirmed)": { cmd: script, args: [], stdin: linesFile },
  }, {
    before: purge,
    after: async () => {
      const depth = await queueDepth();
      if (depth !== LINES) console.log(`  (warning: the queue held ${depth} messages, not ${LINES})`);
      await purge();
    },
  });
  table(r, "amqp-publish -l -p (unconfirmed)", LINES);
}

if (CASES.has("2")) {
  console.log(`\ncase 2: consume ${LINES} messages to /dev/null (manual acks, prefetch 100)`);
  const script = await compileBaseline("consume_count.ts");
  const fill = async () => {
    await purge();
    await timeOnce({ cmd: BIN, args: ["produce", "--lines"], stdin: linesFile });
  };
  const r = await compare({
    "kmq consume -n": { cmd: BIN, args: ["consume", "-n", String(LINES)] },
    "amqp-client consumer": { cmd: script, args: [String(LINES)] },
  }, { before: fill });
  table(r, "amqp-client consumer", LINES);
  await purge();
}

if (CASES.has("3")) {
  console.log(
    `\ncase 3: wall time of one produce "Hello World!" (connect, declare, publish, confirm, close)`,
  );
  const script = await compileBaseline("publish_hello.ts");
  const r = await compare({
    "dist/kmq produce": { cmd: BIN, args: ["produce", "Hello World!"] },
    "amqp-client script": { cmd: script, args: [] },
  }, { runs: RUNS * 4 });
  table(r, "amqp-client script");
  await purge();
}

if (CASES.has("4")) {
  const lineBytes = 4096;
  const count = (1024 * 1024 * 1024) / lineBytes;
  console.log(`\ncase 4: peak RSS of kmq produce --lines fed 1 GiB (${count} lines of ${lineBytes} bytes)`);
  const line = "x".repeat(lineBytes - 1) + "\n";
  const chunk = new TextEncoder().encode(line.repeat(256));
  const [mib, s, code] = await fed(BIN, ["produce", "--lines"], chunk, count / 256);
  console.log(
    `  peak RSS ${mib.toFixed(1)} MiB (target <= 128 MiB), exit ${code}, ${s.toFixed(1)} s, ` +
      `queue held ${await queueDepth()} of ${count}`,
  );
  await purge();
}
if (CASES.has("5")) {
  const n = 2000;
  console.log(`\ncase 5: ${n} messages each handled by /bin/true (a process per message)`);
  const fill = async () => {
    await purge();
    await timeOnce({ cmd: BIN, args: ["produce", "--repeat", String(n), "job"] });
  };
  // amqp-consume dies of SIGPIPE (or a write error) when the command exits without reading the
  // body, as /bin/true does: its baseline runs `cat`, which reads it; kmq runs both
  const r = await compare({
    "kmq consume -c 1 -- /bin/true": {
      cmd: BIN,
      args: ["consume", "-n", String(n), "-c", "1", "--", "/bin/true"],
    },
    "kmq consume -c 4 -- /bin/true": {
      cmd: BIN,
      args: ["consume", "-n", String(n), "-c", "4", "--", "/bin/true"],
    },
    "kmq consume -c 1 -- cat": { cmd: BIN, args: ["consume", "-n", String(n), "-c", "1", "--", "cat"] },
    "amqp-consume -c 2000 cat": {
      cmd: "amqp-consume",
      args: ["-u", URL_.replace(/\/$/, ""), "-q", "queue", "-c", String(n), "cat"],
    },
  }, { before: fill });
  table(r, "amqp-consume -c 2000 cat", n);
  await purge();
}
if (CASES.has("6")) await caseSix();
await Deno.remove(tmp, { recursive: true });

/** Peak RSS (MiB), wall time (s) and exit code of `bin args` fed `chunk` `times` times on stdin. */
async function fed(
  bin: string,
  args: string[],
  chunk: Uint8Array,
  times: number,
): Promise<[number, number, number]> {
  const child = new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", bin, ...args],
    env: { KMQ_URL: URL_ },
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const started = performance.now();
  const writer = child.stdin.getWriter();
  // kmq may stop reading (and exit) before the input ends: a refused write ends the feeding
  for (let i = 0; i < times; i++) {
    if (!(await writer.write(chunk).then(() => true, () => false))) break;
  }
  await writer.close().catch(() => {});
  const out = await child.output();
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  return [Number(lines[lines.length - 1]) / 1024, (performance.now() - started) / 1000, out.code];
}

async function caseSix(): Promise<void> {
  const contenders: [string, string][] = [["dist/kmq", BIN]];
  if (BEFORE) contenders.push(["--before", BEFORE]);
  const mb = 600;
  console.log(`\ncase 6a: one ${mb} MiB line to produce --lines (refused: over the max message size)`);
  for (const [name, bin] of contenders) {
    const mib = new TextEncoder().encode("x".repeat(1024 * 1024));
    const [rss, s, code] = await fed(bin, ["produce", "--lines", "-e", "", "-r", "queue"], mib, mb);
    console.log(`  ${name.padEnd(12)} peak RSS ${rss.toFixed(1)} MiB, ${s.toFixed(1)} s, exit ${code}`);
  }
  await purge();
  const n = 30_000;
  console.log(`\ncase 6b: parsing ${n} -H headers (then refused: they do not fit a frame)`);
  const headers = Array.from({ length: n }, (_, i) => ["-H", `k${i}=v`]).flat();
  const r = await compare(
    Object.fromEntries(
      contenders.map(([name, bin]) => [name, { cmd: bin, args: ["produce", ...headers, "x"] }]),
    ),
    { runs: 1, expectFailure: true },
  );
  table(r, "dist/kmq");
}
