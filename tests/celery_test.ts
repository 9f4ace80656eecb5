/** `kmq celery send` against a real Celery worker (Debian's python3-celery). */
import { assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, run, skipWithoutPython, sleep, TEST_URL, unique, withCleanup } from "./helpers.ts";

const ignore = await skipWithoutPython("celery");
const DIR = new URL("./celery/", import.meta.url).pathname;

/** Polls until `ok()` holds or the deadline passes (then fails with `what`). */
async function until(ok: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function consumers(queue: string): Promise<number> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-q", "list_queues", "name", "consumers"],
    stdout: "piped",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith(`${queue}\t`));
  return Number(line?.split("\t")[1] ?? 0);
}

Deno.test({ name: "celery send: a real Celery worker runs the task kmq sends", ignore }, async () => {
  const q = unique("kmq-celery");
  const out = await Deno.makeTempFile();
  await withCleanup({ queues: [q], exchanges: [q] }, async () => {
    const worker = new Deno.Command("/usr/bin/python3", {
      args: [
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-Q",
        q,
        "--pool",
        "solo",
        "-c",
        "1",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "warning",
      ],
      cwd: DIR,
      env: { KMQ_CELERY_BROKER: TEST_URL, KMQ_CELERY_QUEUE: q, KMQ_CELERY_OUT: out },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      await until(async () => (await consumers(q)) > 0, "the worker to consume");
      const plain = await run(["celery", "send", "tasks.add", "2", "3", "-q", q]);
      assertEquals(plain.code, 0, plain.stderr);
      const later = await run([
        "celery",
        "send",
        "tasks.add",
        "4",
        "1",
        "--kwargs",
        '{"scale": 10}',
        "-q",
        q,
        "--countdown",
        "1",
        "--id",
        "kmq-fixed-id",
      ]);
      assertEquals([later.code, later.stdout], [0, "kmq-fixed-id\n"], later.stderr);
      const id = plain.stdout.trim();
      assertMatch(id, /^[0-9a-f-]{36}$/);
      // numbers beyond JavaScript's exact range arrive as written; every key arrives
      const exact = await run([
        "celery",
        "send",
        "tasks.echo",
        "1234567890123456789",
        "-5e-7",
        '{"deep": [18446744073709551616]}',
        "--kwargs",
        '{"x": 9007199254740993, "__proto__": 1, "y": 1.5}',
        "-q",
        q,
        "--id",
        "kmq-exact",
      ]);
      assertEquals(exact.code, 0, exact.stderr);
      const lines = async () => (await Deno.readTextFile(out)).split("\n").filter(Boolean);
      await until(async () => (await lines()).length >= 3, "the three tasks to run");
      const results = (await lines()).map((l) => JSON.parse(l));
      assertEquals(results.filter((r) => r.result !== undefined), [{ id, result: 5 }, {
        id: "kmq-fixed-id",
        result: 50,
      }]);
      assertEquals(results.find((r) => r.id === "kmq-exact"), {
        id: "kmq-exact",
        args: "(1234567890123456789, -5e-07, {'deep': [18446744073709551616]})",
        kwargs: "{'x': 9007199254740993, '__proto__': 1, 'y': 1.5}",
      });
    } finally {
      worker.kill("SIGTERM");
      await worker.output();
      await Deno.remove(out);
    }
  });
});

Deno.test("celery send: a number no double holds is exit 3; an empty or malformed task name is exit 2", async () => {
  for (const args of [["tasks.add", "1e400"], ["tasks.add", "--kwargs", '{"x": -1e999}']]) {
    const r = await run(["celery", "send", ...args]);
    assertFailure(r, 3, /is beyond a 64-bit floating-point number/);
  }
  for (const name of ["", " ", "tasks add", "tasks.add\n", ".add"]) {
    const r = await run(["celery", "send", name, "1"]);
    assertFailure(r, 2, /is not one a worker can run/);
  }
});

Deno.test("celery send: bad --kwargs and --eta are exit 2", async () => {
  const kw = await run(["celery", "send", "tasks.add", "--kwargs", "[1]"]);
  assertEquals(kw.code, 2, kw.stderr);
  assertMatch(kw.stderr, /--kwargs must be a JSON object/);
  const eta = await run(["celery", "send", "tasks.add", "--eta", "tomorrow"]);
  assertEquals(eta.code, 2, eta.stderr);
  assertMatch(eta.stderr, /--eta 'tomorrow' is not an ISO 8601 time/);
});
