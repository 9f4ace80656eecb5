/**
 * kmq's benchmark: each case measured beside its baselines in the same run, contenders
 * alternating run by run, medians quoted. Speed and memory targets are checked here, never in
 * timed tests.
 *
 *   deno task bench [--runs N] [--case 1,2,3,4,5,6,7,8,9] [--before PATH]
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

/** The broker's process id (the shared node's), to read its CPU time beside each run. */
async function brokerPid(): Promise<number | undefined> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-q", "eval", "os:getpid()."],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  const pid = Number(new TextDecoder().decode(out.stdout).replace(/[^0-9]/g, ""));
  return pid > 0 ? pid : undefined;
}
const BROKER = await brokerPid();
const TICK_MS = 10; // Linux's USER_HZ is 100

/** The broker's user + system CPU time so far, in ms (0 when it cannot be read). */
async function brokerCpu(): Promise<number> {
  if (BROKER === undefined) return 0;
  const stat = await Deno.readTextFile(`/proc/${BROKER}/stat`).catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** The broker CPU time (ms) of each contender's runs, beside the wall times. */
const cpu: Record<string, number[]> = {};

const CONTENDER_TIMEOUT_MS = 5 * 60_000;

async function timeOnce(c: Contender, expectFailure = false): Promise<number> {
  const started = performance.now();
  const child = new Deno.Command(c.cmd, {
    args: c.args,
    env: { KMQ_URL: URL_ },
    stdin: c.stdin ? "piped" : "null",
    stdout: "null",
    stderr: "piped",
    // a contender that hangs (the confirmed amqp-client baseline once waited for a confirm for 11
    // minutes) fails the bench instead of stalling it
    signal: AbortSignal.timeout(CONTENDER_TIMEOUT_MS),
  }).spawn();
  if (c.stdin) (await Deno.open(c.stdin)).readable.pipeTo(child.stdin).catch(() => {});
  const out = await child.output();
  const ms = performance.now() - started;
  if (!out.success && !expectFailure) {
    const why = out.signal ? `ended by ${out.signal} (over ${CONTENDER_TIMEOUT_MS / 60_000} min?)` : "failed";
    throw new Error(`${c.cmd} ${c.args.join(" ")} ${why}: ${new TextDecoder().decode(out.stderr)}`);
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
      const cpuBefore = await brokerCpu();
      times[name]!.push(await timeOnce(c, opts.expectFailure));
      (cpu[name] ??= []).push((await brokerCpu()) - cpuBefore);
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
    const broker = cpu[name]?.length ? `, broker CPU ${median(cpu[name]!).toFixed(0)} ms` : "";
    console.log(`  ${name.padEnd(40)} ${ms.toFixed(1).padStart(9)} ms  ${rate}(${what}${broker})`);
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
  const r = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/build-offline.sh`, `${ROOT}scripts/baselines/${script}`, "--outfile", out],
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
  console.log(
    `\ncase 1: ${LINES} 16-byte lines into the durable queue 'queue' (persistent); like beside like`,
  );
  const script = await compileBaseline("publish_lines.ts");
  const amqpPublish = {
    cmd: "amqp-publish",
    args: ["-u", URL_.replace(/\/$/, ""), "-e", "test_exchange", "-r", "test", "-l", "-p"],
    stdin: linesFile,
  };
  const settle = {
    before: purge,
    after: async () => {
      const depth = await queueDepth();
      if (depth !== LINES) console.log(`  (warning: the queue held ${depth} messages, not ${LINES})`);
      await purge();
    },
  };
  console.log("  1a: unconfirmed, not mandatory");
  const a = await compare({
    "kmq produce --lines --no-confirm --no-mandatory": {
      cmd: BIN,
      args: ["produce", "--lines", "--no-confirm", "--no-mandatory"],
      stdin: linesFile,
    },
    "amqp-publish -l -p": amqpPublish,
    "amqp-client script": { cmd: script, args: [], stdin: linesFile },
  }, settle);
  table(a, "amqp-publish -l -p", LINES);
  console.log("  1b: confirmed and mandatory (kmq's defaults)");
  const b = await compare({
    "kmq produce --lines": { cmd: BIN, args: ["produce", "--lines"], stdin: linesFile },
    "amqp-client script confirmed": { cmd: script, args: ["confirmed"], stdin: linesFile },
  }, settle);
  table(b, "amqp-client script confirmed", LINES);
}

if (CASES.has("2")) {
  console.log(`\ncase 2: consume ${LINES} messages to /dev/null (manual acks, prefetch 100, settled queue)`);
  const script = await compileBaseline("consume_count.ts");
  // consuming right after a bulk publish runs ~3x slower for every client: let the queue settle
  const fill = async () => {
    await purge();
    await timeOnce({ cmd: BIN, args: ["produce", "--lines"], stdin: linesFile });
    await new Promise((resolve) => setTimeout(resolve, 5000));
  };
  const r = await compare({
    "kmq consume -n": { cmd: BIN, args: ["consume", "-n", String(LINES)] },
    "lean amqp-client consumer": { cmd: script, args: [String(LINES)] },
  }, { before: fill });
  table(r, "lean amqp-client consumer", LINES);
  await purge();
}

if (CASES.has("3")) {
  console.log(`\ncase 3a: start-up: dist/kmq --version (target <= 1.3x a Bun-compiled hello world)`);
  const hello = await compileBaseline("hello.ts");
  const a = await compare({
    "dist/kmq --version": { cmd: BIN, args: ["--version"] },
    "bun hello world": { cmd: hello, args: [] },
  }, { runs: RUNS * 10 });
  table(a, "bun hello world");
  console.log(
    `\ncase 3b: one produce "Hello World!" (connect, declare, publish, confirm, close; target <= 2.5x amqp-publish)`,
  );
  const script = await compileBaseline("publish_hello.ts");
  const b = await compare({
    "dist/kmq produce": { cmd: BIN, args: ["produce", "Hello World!"] },
    "amqp-publish (no declare, no confirm)": {
      cmd: "amqp-publish",
      args: ["-u", URL_.replace(/\/$/, ""), "-e", "test_exchange", "-r", "test", "-p", "-b", "Hello World!"],
    },
    "amqp-client script (same work as kmq)": { cmd: script, args: [] },
  }, { runs: RUNS * 10 });
  table(b, "amqp-publish (no declare, no confirm)");
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
if (CASES.has("7")) await caseSeven();
if (CASES.has("8")) await (await import("./bench-transfer.ts")).caseEight(BIN, URL_, tmp);
if (CASES.has("9")) await (await import("./bench-info.ts")).caseNine(BIN, BEFORE, RUNS);
await Deno.remove(tmp, { recursive: true });

/** kmq bench's own report (-o json) of one run. */
async function benchReport(args: string[]): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(BIN, { args: ["bench", "-o", "json", ...args], env: { KMQ_URL: URL_ } })
    .output();
  if (!out.success) throw new Error(`kmq bench ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * Case 7: kmq bench's producer beside kmq produce and amqp-publish (unconfirmed, persistent, 16
 * bytes, one durable classic queue each: like beside like), then its latency at half that rate.
 */
async function caseSeven(): Promise<void> {
  const publishOnly = `--consumers 0 --confirm 0 --persistent --size 16 -n ${LINES}`.split(" ");
  console.log(`\ncase 7a: ${LINES} 16-byte persistent messages, unconfirmed, one producer (wall time)`);
  const settle = { before: purge, after: purge };
  const r = await compare({
    // into the same queue as the others (a queue declared for the run is slower for the broker to fill)
    "kmq bench --consumers 0 --confirm 0": {
      cmd: BIN,
      args: ["bench", "--predeclared", "queue", ...publishOnly],
    },
    "kmq produce --lines --no-confirm": {
      cmd: BIN,
      args: ["produce", "--lines", "--no-confirm", "--no-mandatory"],
      stdin: linesFile,
    },
    "amqp-publish -l -p": {
      cmd: "amqp-publish",
      args: ["-u", URL_.replace(/\/$/, ""), "-e", "test_exchange", "-r", "test", "-l", "-p"],
      stdin: linesFile,
    },
  }, settle);
  table(r, "amqp-publish -l -p", LINES);
  const own = await benchReport(["--predeclared", "queue", ...publishOnly]);
  await purge();
  const half = Math.round(Number(own.send_rate) / 2);
  console.log(
    `  kmq bench's own send rate (to the broker's channel.close-ok): ${own.send_rate} msg/s; ` +
      `case 7b at half of it, ${half} msg/s, 20 s, persistent, confirmed, one consumer:`,
  );
  const at = await benchReport(["--rate", String(half), "--duration", "20s", "--persistent", "--size", "16"]);
  for (const key of ["latency_ms", "confirm_latency_ms"]) {
    const l = at[key] as Record<string, number>;
    const text = ["p50", "p90", "p99", "p99_9", "p99_99", "max"].map((p) => `${p} ${l[p]!.toFixed(2)}`).join(
      ", ",
    );
    console.log(`  ${key.padEnd(20)} ${text} (ms)`);
  }
  console.log(`  sent ${at.sent}, received ${at.received}, fell behind: ${at.consumers_fell_behind}`);
}

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
