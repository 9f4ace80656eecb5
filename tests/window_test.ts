/**
 * Reading like kcat: --template (every token, binary bodies, a terminal), --exit-at-end on a queue
 * that producers keep filling and on a stream, --last and --until on a stream, move --exit-at-end.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  drain,
  kmqCommand,
  publishRaw,
  queueDepth,
  run,
  Running,
  TEST_URL,
  unique,
  withCleanup,
} from "./helpers.ts";
import { numbered } from "./tally.ts";

/** Runs `work` while a producer adds "later" to `queue` at `rate` msg/s; stopped (SIGINT) afterwards. */
async function whileProducing(queue: string, rate: number, work: () => Promise<void>): Promise<void> {
  const producer = new Running([
    "produce",
    "-e",
    "",
    "-q",
    queue,
    "--rate",
    String(rate),
    "--repeat",
    "1000000",
    "later",
  ]);
  try {
    await work();
  } finally {
    producer.kill("SIGINT");
    await producer.result();
  }
}

Deno.test("--template: every token, byte-exact bodies when piped, on consume and peek", async () => {
  const q = unique("kmq-tpl");
  await withCleanup({ queues: [q] }, async (client) => {
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    const binary = new Uint8Array([0, 255, 10, 27, 91, 50, 74]);
    await publishRaw(client, "", q, binary, {
      messageId: "m-1",
      contentType: "application/octet-stream",
      timestamp: new Date(Date.UTC(2026, 10, 30, 12, 0, 0)),
      // JSON.parse keeps "__proto__" as a key (an object literal would set the prototype)
      headers: JSON.parse(
        '{"tenant": "acme", "n": 5, "x-stream-offset": 42, "x-first-death-queue": "orders", ' +
          '"x-first-death-reason": "rejected", "__proto__": "kept"}',
      ),
    });
    const format =
      "%k|%e|%h{tenant}|%h{n}|%h{none}|%h{__proto__}|%p{message_id}|%p{content_type}|%p{timestamp}|" +
      "%t|%o|%r|%s|%d|%%|\\t|\\\\|%b\\n";
    const peeked = await run(["peek", "-q", q, "--template", format]);
    assertEquals(peeked.code, 0, peeked.stderr);
    const line =
      `${q}||acme|5||kept|m-1|application/octet-stream|1796040000|2026-11-30T12:00:00Z|42|false|7|orders rejected|%|\t|\\|`;
    assertEquals(
      Array.from(peeked.stdoutBytes),
      [...new TextEncoder().encode(line), ...binary, 10],
      "the body's bytes as they are",
    );
    const all = await run(["consume", "-q", q, "-n", "1", "--template", "%h"]);
    assertEquals(all.code, 0, all.stderr);
    const headers = JSON.parse(all.stdout);
    assertEquals([headers.tenant, headers.n, headers["x-first-death-queue"]], ["acme", 5, "orders"]);
    assertEquals(Object.hasOwn(headers, "__proto__"), true, "__proto__ is a header like any other");
  });
});

Deno.test("--template: an unknown token, a property that is none, and -o beside it are exit 2 naming the fix", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--template", "%k %x"],
      /--template: '%x' is not a token; the tokens are %b %k %e %h %h\{name\} %p\{name\}/,
    ],
    [
      ["--template", "%p{colour}"],
      /--template: %p\{colour\} names no property; the properties are content_type/,
    ],
    [["--template", "trailing \\"], /--template: '\\' is not a token/],
    [
      ["--template", "%b", "-o", "json"],
      /--template and -o both say how to print a message: give one of them/,
    ],
  ];
  for (const [args, pattern] of cases) {
    assertFailure(await run(["consume", "-q", unique("kmq-none"), ...args]), 2, pattern);
  }
  assertFailure(
    await run(["consume", "-q", "x", "--template", "%b", "--", "cat"]),
    2,
    /--template prints messages: with a command each message goes to the command/,
  );
});

Deno.test("--template on a terminal: control characters in the body and headers are shown, not obeyed", async () => {
  const q = unique("kmq-tpl");
  await withCleanup({ queues: [q] }, async (client) => {
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    await publishRaw(client, "", q, "a\x1b[2Jb", { headers: { t: "\x07x" } });
    const [cmd, pre] = kmqCommand();
    const line = [cmd, ...pre, "consume", "-q", q, "-n", "1", "--template", "%h{t} %b\\n"].map((a) =>
      `'${a}'`
    )
      .join(" ");
    const out = await new Deno.Command("script", {
      args: ["-qec", line, "/dev/null"],
      env: { KMQ_URL: TEST_URL, NO_COLOR: "1", TERM: "xterm" },
      stdin: "null",
      stdout: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, text);
    assert(text.includes("\\x07x a\\x1b[2Jb"), text);
    assert(!text.includes("\x1b[2J"), "no raw escape reached the terminal");
  });
});

Deno.test("consume --exit-at-end reads what the queue held at the start while a producer keeps publishing", async () => {
  const q = unique("kmq-eae");
  await withCleanup({ queues: [q] }, async (client) => {
    assertEquals((await run(["produce", "-e", "", "-q", q, "--lines"], { stdin: numbered(1, 500) })).code, 0);
    // a producer at 200 msg/s keeps adding while the consumer reads
    await whileProducing(q, 200, async () => {
      const r = await run(["consume", "-q", q, "--exit-at-end"], { timeoutMs: 60_000 });
      assertEquals(r.code, 0, r.stderr);
      // the 500, then those of the producer's that were in before kmq looked (it started first)
      assert(r.stdout.startsWith(numbered(1, 500)), r.stdout.slice(0, 100));
      assert(r.stdout.slice(numbered(1, 500).length).split("\n").filter(Boolean).every((l) => l === "later"));
    });
    assert(await queueDepth(client, q) > 0, "the later ones stay");
    // an empty queue: at once, exit 0, said on stderr
    await drain(client, q);
    const empty = await run(["consume", "-q", q, "--exit-at-end"]);
    assertEquals([empty.code, empty.stdout], [0, ""]);
    assertMatch(empty.stderr, /queue '.*' holds nothing to read \(--exit-at-end\)/);
  });
});

Deno.test("consume --exit-at-end: what another consumer took is said, still exit 0", async () => {
  const q = unique("kmq-eae");
  await withCleanup({ queues: [q] }, async () => {
    assertEquals((await run(["produce", "-e", "", "-q", q, "--lines"], { stdin: numbered(1, 200) })).code, 0);
    // a command slow enough for a second consumer, started at once, to take most of them
    const slow = new Running([
      "-v",
      "consume",
      "-q",
      q,
      "--exit-at-end",
      "-p",
      "1",
      "--",
      "sh",
      "-c",
      "cat; echo; sleep 0.05",
    ]);
    await slow.waitForStderr("consuming from", 20_000);
    const fast = await run(["consume", "-q", q, "--idle-timeout", "2", "-p", "1"]);
    const r = await slow.result();
    assertEquals(r.code, 0, r.stderr);
    const took = (r.stdout.match(/\n/g) ?? []).length;
    assertMatch(
      r.stderr,
      new RegExp(
        `read ${took} of the 200 message\\(s\\) queue '.*' held at the start: the others went to other consumers`,
      ),
    );
    assertEquals(took + fast.stdout.split("\n").filter(Boolean).length, 200);
  });
});

Deno.test("a stream: --exit-at-end reads to the offset that was last at the start; --last N; --until", async () => {
  const s = unique("kmq-st");
  await withCleanup({ queues: [s] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", s, "--queue-type", "stream"])).code, 0);
    assertEquals(
      (await run(["produce", "-e", "", "-q", s, "--lines"], { stdin: numbered(1, 2000) })).code,
      0,
    );
    await whileProducing(s, 100, async () => {
      const whole = await run(["consume", "-q", s, "--exit-at-end"], { timeoutMs: 60_000 });
      assertEquals(whole.code, 0, whole.stderr);
      const lines = whole.stdout.split("\n").filter(Boolean);
      assertEquals(lines.slice(0, 2000).join("\n") + "\n", numbered(1, 2000), "from the first, in order");
      assert(lines.slice(2000).every((l) => l === "later"), "then only what came before kmq started");
      const tail = await run([
        "consume",
        "-q",
        s,
        "--offset",
        "first",
        "--exit-at-end",
        "-n",
        "3",
        "--template",
        "%o:%b\\n",
      ]);
      assertEquals(tail.stdout, "0:1\n1:2\n2:3\n");
    });
    const last = await run(["consume", "-q", s, "--last", "3", "--exit-at-end", "--template", "%b\\n"]);
    assertEquals([last.code, last.stdout], [0, "later\nlater\nlater\n"], last.stderr);
    // everything was published in the last hour: nothing is older than 1h
    const before = await run(["consume", "-q", s, "--until", "1h"]);
    assertEquals([before.code, before.stdout], [0, ""]);
    assertMatch(before.stderr, /holds nothing to read before --until/);
    const upToNow = await run(["consume", "-q", s, "--until", new Date().toISOString(), "-n", "2"]);
    assertEquals([upToNow.code, upToNow.stdout], [0, "1\n2\n"], upToNow.stderr);
  });
});

Deno.test("--last, --until and --exit-at-end: what they refuse", async () => {
  const q = unique("kmq-eae");
  await withCleanup({ queues: [q] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    assertFailure(
      await run(["consume", "-q", q, "--last", "5"]),
      2,
      /--last reads a stream: queue '.*' is a classic queue/,
    );
    assertFailure(
      await run(["consume", "-q", q, "--last", "5", "--offset", "first"]),
      2,
      /--last and --offset both say where to start/,
    );
    assertFailure(
      await run(["consume", "-q", q, "--until", "tomorrow"]),
      2,
      /--until takes an ISO 8601 time or an interval/,
    );
    assertFailure(
      await run(["consume", "-q", q, "--until", "2999-01-01T00:00:00Z"]),
      2,
      /--until .* is in the future/,
    );
    assertFailure(
      await run(["consume", "-q", "", "-e", "amq.topic", "--exit-at-end"]),
      2,
      /a new server-named queue \(-q ''\) holds nothing yet/,
    );
  });
});

Deno.test("move --exit-at-end moves what the source held at the start; arrivals during the move stay", async () => {
  const [src, dst] = [unique("kmq-msrc"), unique("kmq-mdst")];
  await withCleanup({ queues: [src, dst] }, async (client) => {
    assertEquals(
      (await run(["produce", "-e", "", "-q", src, "--lines"], { stdin: numbered(1, 1000) })).code,
      0,
    );
    await whileProducing(src, 200, async () => {
      const m = await run(["move", "--from", src, "--to", dst, "--exit-at-end", "--rate", "500"], {
        timeoutMs: 60_000,
      });
      assertEquals(m.code, 0, m.stderr);
      const moved = Number(/moved (\d+) message\(s\)/.exec(m.stderr)?.[1]);
      // the 1,000, and what of the producer's was in when the move looked (it started first)
      assert(moved >= 1000 && moved < 1000 + 200 * 10, m.stderr);
    });
    const moved = (await drain(client, dst)).map((msg) => msg.bodyToString());
    assertEquals(moved.slice(0, 1000).join("\n") + "\n", numbered(1, 1000));
    assert(moved.slice(1000).every((b) => b === "later"));
    const left = await drain(client, src);
    assert(
      left.length > 0 && left.every((msg) => msg.bodyToString() === "later"),
      "what came during the move stayed",
    );
    const none = await run(["move", "--from", src, "--to", dst, "--exit-at-end"]);
    assertEquals(none.code, 0, none.stderr);
    assertMatch(none.stderr, /holds nothing to move \(--exit-at-end\)/);
  });
});
