/** `kmq bench`: rates, exact latency percentiles, the JSON report, clean-up, and what it refuses. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  kmqCommand,
  queueDepth,
  run,
  Running,
  TEST_URL,
  unique,
  withCleanup,
} from "./helpers.ts";

interface Summary {
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  p99_99: number;
  max: number;
  count: number;
}

interface Report {
  sent: number;
  confirmed: number;
  returned: number;
  nacked: number;
  received: number;
  foreign: number;
  duration_s: number;
  send_rate: number;
  receive_rate: number;
  latency_ms: Summary | null;
  confirm_latency_ms: Summary | null;
  coordinated_omission_corrected: boolean;
  consumers_fell_behind: boolean;
  left_in_queues: number | null;
  queues: string[];
  stopped_by: string | null;
}

async function bench(args: string[]): Promise<Report> {
  const r = await run(["bench", "-o", "json", ...args], { timeoutMs: 120_000 });
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stderr, "", "piped, no live line and nothing else on stderr");
  return JSON.parse(r.stdout) as Report;
}

/** The queue names the shared broker has now. */
async function queueNames(): Promise<string[]> {
  const out = await new Deno.Command("rabbitmqctl", { args: ["-q", "list_queues", "name"], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim()).filter(Boolean);
}

function assertAscending(s: Summary | null, what: string): void {
  assert(s !== null, `${what}: timed`);
  const order = [s.p50, s.p90, s.p99, s.p99_9, s.p99_99, s.max];
  assert(order.every((v, i) => v > 0 && (i === 0 || v >= order[i - 1]!)), `${what} ascending: ${order}`);
}

Deno.test("bench: 5 s at --rate 500 sends 2,500 ± 2% and receives every one; the report adds up; its queue is gone", async () => {
  const r = await bench(["--rate", "500", "--duration", "5s"]);
  assert(r.sent >= 2450 && r.sent <= 2550, `sent ${r.sent}`);
  assertEquals([r.confirmed, r.received, r.returned, r.nacked, r.foreign], [r.sent, r.sent, 0, 0, 0]);
  assertEquals([r.left_in_queues, r.consumers_fell_behind, r.stopped_by], [0, false, null]);
  assertEquals(r.coordinated_omission_corrected, true);
  assertAscending(r.latency_ms, "latency");
  assertAscending(r.confirm_latency_ms, "confirm latency");
  assertEquals([r.latency_ms!.count, r.confirm_latency_ms!.count], [r.received, r.confirmed]);
  assert(Math.abs(r.send_rate - 500) <= 10, `send rate ${r.send_rate}`);
  assert(r.duration_s >= 5, `duration ${r.duration_s}`);
  assertEquals(r.queues.length, 1);
  assertMatch(r.queues[0]!, /^kmq-bench-[0-9a-f]{8}-1$/);
  assert(!(await queueNames()).includes(r.queues[0]!), "the bench's queue is deleted");
});

Deno.test("bench: a consumer that works 50 ms per message shows a p50 above 50 ms; one that falls behind is told so", async () => {
  const kept = await bench(["--rate", "10", "--duration", "2s", "--consumer-latency", "50ms"]);
  assertEquals(kept.received, kept.sent);
  assert(kept.latency_ms!.p50 > 50, `p50 ${kept.latency_ms!.p50} ms`);
  assertEquals(kept.consumers_fell_behind, false);
  // 40 a second in, 20 a second out: the queue grows, and the report says so
  const behind = await run(["bench", "--rate", "40", "--duration", "2s", "--consumer-rate", "20"]);
  assertEquals(behind.code, 0, behind.stderr);
  assertMatch(behind.stdout, /^behind +the consumers fell behind: \d+ message\(s\) were waiting/m);
  assertMatch(behind.stdout, /^received +80 \(2\d msg\/s\)$/m);
});

Deno.test("bench: quorum and stream queues", async () => {
  const quorum = await bench(["--queue-type", "quorum", "--persistent", "-n", "3000"]);
  assertEquals([quorum.sent, quorum.confirmed, quorum.received, quorum.left_in_queues], [
    3000,
    3000,
    3000,
    0,
  ]);
  const stream = await bench([
    "--queue-type",
    "stream",
    "-n",
    "3000",
    "--producers",
    "2",
    "--consumers",
    "2",
  ]);
  // two consumers of one stream each read all of it; a stream keeps what was read (no depth to check)
  assertEquals([stream.sent, stream.confirmed, stream.received, stream.left_in_queues], [
    6000,
    6000,
    12000,
    null,
  ]);
  assertAscending(stream.latency_ms, "stream latency");
  const names = await queueNames();
  assert(![...quorum.queues, ...stream.queues].some((q) => names.includes(q)), "both deleted");
});

Deno.test("bench: publish only and drain only on a predeclared queue, with .hgrm files; the queue stays", async () => {
  const q = unique("kmq-bq");
  const dir = await Deno.makeTempDir();
  await withCleanup({ queues: [q] }, async (client) => {
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    const out = await bench([
      "--consumers",
      "0",
      "-n",
      "1000",
      "--predeclared",
      q,
      "--confirm-hgrm",
      `${dir}/c.hgrm`,
    ]);
    assertEquals([out.sent, out.confirmed, out.received, out.latency_ms], [1000, 1000, 0, null]);
    assertEquals([out.left_in_queues, await queueDepth(client, q)], [1000, 1000]);
    const hgrm = await Deno.readTextFile(`${dir}/c.hgrm`);
    assertMatch(hgrm, /Value +Percentile +TotalCount/);
    assertMatch(hgrm, /#\[Max += +[\d.]+, Total count += +1000\]/);
    // another run's messages are received and counted, but not timed: their clocks are not ours
    const drained = await bench(["--producers", "0", "--consumers", "2", "-n", "1000", "--predeclared", q]);
    assertEquals([drained.received, drained.foreign, drained.latency_ms, drained.left_in_queues], [
      1000,
      1000,
      null,
      0,
    ]);
    assert((await queueNames()).includes(q), "a predeclared queue is not deleted");
    // a body file travels as it is, its send time in a header
    await Deno.writeFile(`${dir}/body`, new Uint8Array([0, 255, 1, 2, 3]));
    const filed = await bench([
      "--predeclared",
      q,
      "-n",
      "500",
      "--body-file",
      `${dir}/body`,
      "--hgrm",
      `${dir}/e.hgrm`,
    ]);
    assertEquals([filed.received, filed.foreign, filed.latency_ms?.count], [500, 0, 500]);
    assertMatch(await Deno.readTextFile(`${dir}/e.hgrm`), /Total count += +500\]/);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bench: Ctrl-C mid-run is exit 130 with the report so far, and the bench's queues are deleted", async () => {
  const b = new Running([
    "-v",
    "bench",
    "--rate",
    "200",
    "--duration",
    "60s",
    "--queues",
    "2",
    "--consumers",
    "2",
  ], {
    setsid: true,
  });
  await b.waitForStderr("-2'", 20_000); // the second queue's name ends in -2
  const names = [...b.stderr.matchAll(/declared classic queue '(kmq-bench-[0-9a-f-]+)'/g)].map((m) => m[1]!);
  assertEquals(names.length, 2, b.stderr);
  await b.waitForStderr("connected to", 20_000);
  await new Promise((r) => setTimeout(r, 1500));
  await b.killGroup("SIGINT");
  const r = await b.result();
  assertEquals(r.code, 130, r.stderr);
  assertMatch(
    r.stderr,
    /stopped by SIGINT: the figures above cover the run until then; the bench's queues are deleted$/m,
  );
  assertMatch(r.stdout, /^sent +\d+/m);
  const left = await queueNames();
  for (const name of names) assert(!left.includes(name), `${name} deleted`);
});

Deno.test("bench: what it refuses, each with the fix", async () => {
  const missing = unique("kmq-none");
  const cases: [string[], number, RegExp][] = [
    [["--producers", "0", "--consumers", "0"], 2, /leave nothing to measure/],
    [["--size", "4"], 2, /--size must be from 12 to/],
    [
      ["--queues", "2"],
      2,
      /a queue without a consumer only fills; give at least as many consumers as queues/,
    ],
    [["--duration", "soon"], 2, /--duration must be a time such as 30s, 500ms, 2m or 1h/],
    [["--rate", "-1"], 2, /--rate must be a number of messages per second/],
    [["--size", "100", "--body-file", "/etc/hostname"], 2, /--size and --body-file both say what to send/],
    [["--body-file", "/nonexistent/body"], 3, /--body-file '\/nonexistent\/body' does not exist/],
    [
      ["--hgrm", "/nonexistent/dir/x.hgrm", "-n", "1"],
      3,
      /--hgrm file '\/nonexistent\/dir\/x.hgrm' cannot be written/,
    ],
    [["--predeclared", missing], 6, /queue '.*' does not exist/],
  ];
  for (const [args, code, pattern] of cases) {
    const r = await run(["bench", ...args]);
    assertFailure(r, code, pattern);
  }
});

Deno.test("bench: on a terminal a live line each second, redrawn in place; the report after it", async () => {
  const [cmd, pre] = kmqCommand();
  const line = [cmd, ...pre, "bench", "--rate", "300", "--duration", "3s"].map((a) => `'${a}'`).join(" ");
  const out = await new Deno.Command("script", {
    args: ["-qec", `stty cols 160; ${line}`, "/dev/null"],
    env: { KMQ_URL: TEST_URL, NO_COLOR: "1", TERM: "xterm" },
    stdin: "null",
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, text);
  // each redraw starts with a carriage return and an erase of the line; a second's rate at --rate 300 is
  // 299 or 301 as often as 300 (which messages fall into that second)
  const redraws = text.split("\r\x1b[K");
  assert(
    redraws.some((l) =>
      /^2 s: sent (29\d|30\d)\/s, confirmed \d+\/s, received \d+\/s, returned 0, nacked 0; latency p50/.test(
        l,
      )
    ),
    text,
  );
  assert(redraws.at(-1)!.startsWith("kmq bench: 1 producer"), "the line is cleared before the report");
});

Deno.test("bench: a broker that is not there is exit 4 in one line; Ctrl-C during a max-rate publish-only run still stops it and deletes its queue", async () => {
  assertFailure(
    await run(["bench", "--duration", "2s"], { env: { KMQ_URL: "amqp://guest:guest@127.0.0.1:1/" } }),
    4,
    /connecting to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1\/: .*ECONNREFUSED/,
  );
  // as fast as it goes, no confirms: the publish loop must still let the signal in
  const b = new Running(["-v", "bench", "--consumers", "0", "--confirm", "0", "--duration", "60s"], {
    setsid: true,
  });
  await b.waitForStderr("declared classic queue 'kmq-bench-", 20_000);
  const name = /declared classic queue '(kmq-bench-[0-9a-f-]+)'/.exec(b.stderr)![1]!;
  await b.waitForStderr("connected to", 20_000);
  await new Promise((r) => setTimeout(r, 1000));
  const signalled = Date.now();
  await b.killGroup("SIGINT");
  const r = await b.result();
  assertEquals(r.code, 130, r.stderr);
  assert(Date.now() - signalled < 15_000, `ended ${Date.now() - signalled} ms after SIGINT`);
  assertMatch(r.stdout, /^sent +[\d,]+ \(/m);
  assert(!(await queueNames()).includes(name), `${name} deleted`);
});
