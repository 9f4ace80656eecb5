/**
 * Loss and hang paths an adversarial probe found (issue 19): a broker that nacks in bulk, a move
 * target that refuses, a move into its own source. Each must end in its documented exit code in
 * bounded time with every message accounted for.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  drain,
  queueDepth,
  run,
  sleep,
  startConsumer,
  TEST_URL,
  unique,
  withCleanup,
} from "./helpers.ts";

/** Fails a hang within this, instead of stalling the suite: every case here ends in a few seconds. */
const BOUND = 30_000;

/** A queue that holds `max` messages and nacks every publish beyond them, filled to the brim. */
async function fullQueue(q: string, max = 10): Promise<void> {
  const d = await run([
    "declare",
    "-e",
    "",
    "-q",
    q,
    "--max-length",
    String(max),
    "--overflow",
    "reject-publish",
  ]);
  assertEquals(d.code, 0, d.stderr);
  const fill = Array.from({ length: max }, (_, i) => `full ${i + 1}`).join("\n") + "\n";
  const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--lines"], { stdin: fill });
  assertEquals(p.code, 0, p.stderr);
}

function numbered(n: number, prefix = ""): string {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`).join("\n") + "\n";
}

Deno.test("produce into a queue that nacks in bulk (multiple + requeue): every nack counts, exit 7", async () => {
  const q = unique("kmq-full");
  await withCleanup({ queues: [q] }, async (client) => {
    await fullQueue(q);
    const r = await run(["produce", "-e", "", "-r", q, "-q", q, "--lines"], {
      stdin: numbered(100),
      timeoutMs: BOUND,
    });
    assertFailure(r, 7, /^kmq: 100 of 100 messages not delivered: 100 nacked by the broker \(line 1, line 2/);
    assertEquals(await queueDepth(client, q), 10);
  });
});

Deno.test("move to a queue that nacks: the move stops, exit 7 naming the first refused, all stay in the source", async () => {
  const [src, dst] = [unique("kmq-src"), unique("kmq-full")];
  await withCleanup({ queues: [src, dst] }, async (client) => {
    await fullQueue(dst);
    const p = await run(["produce", "-e", "", "-r", src, "-q", src, "--lines"], { stdin: numbered(300) });
    assertEquals(p.code, 0, p.stderr);
    const r = await run(["move", "--from", src, "--to", dst], { timeoutMs: BOUND });
    assertEquals(r.code, 7, r.stderr);
    assertMatch(
      r.stderr,
      /the target refused \d+ message\(s\) \(the first, message 1, nacked by the broker\)/,
    );
    assertMatch(r.stderr, new RegExp(`they stay in queue '${src}'`));
    const left = (await drain(client, src)).map((m) => m.bodyToString());
    assertEquals(left.sort(), numbered(300).trimEnd().split("\n").sort());
    assertEquals(await queueDepth(client, dst), 10);
  });
});

Deno.test("move to an exchange with no binding: returned, the move stops with exit 7, nothing lost", async () => {
  const [src, ex] = [unique("kmq-src"), unique("kmq-ex")];
  await withCleanup({ queues: [src], exchanges: [ex] }, async (client) => {
    const ch = await client.channel();
    await ch.exchangeDeclare(ex, "direct", { durable: true });
    const p = await run(["produce", "-e", "", "-r", src, "-q", src, "--lines"], { stdin: numbered(200) });
    assertEquals(p.code, 0, p.stderr);
    const r = await run(["move", "--from", src, "--to-exchange", ex], { timeoutMs: BOUND });
    assertEquals(r.code, 7, r.stderr);
    assertMatch(
      r.stderr,
      /the target refused \d+ message\(s\) \(the first, message 1, returned as unroutable\)/,
    );
    const left = (await drain(client, src)).map((m) => m.bodyToString());
    assertEquals(left.sort(), numbered(200).trimEnd().split("\n").sort());
    assert(!/moved [1-9]/.test(r.stderr), r.stderr);
  });
});

/** A queue's arguments as the broker holds them (rabbitmqctl, not kmq, reads them). */
async function brokerArguments(q: string): Promise<unknown> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["list_queues", "-q", "--formatter", "json", "name", "arguments"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const rows = JSON.parse(new TextDecoder().decode(out.stdout)) as { name: string; arguments: unknown }[];
  const row = rows.find((r) => r.name === q);
  return row?.arguments;
}

Deno.test("argument values past 2^31 arrive as written; past what JSON holds exactly, exit 2 and nothing declared", async () => {
  const q = unique("kmq-args");
  await withCleanup({ queues: [q] }, async (client) => {
    const d = await run([
      "declare",
      "-e",
      "",
      "-q",
      q,
      "--max-length-bytes",
      "3221225472",
      "--message-ttl",
      "3000000000",
      "--queue-arg",
      "x-max-length:=4294967296",
    ]);
    assertEquals(d.code, 0, d.stderr);
    // as rabbitmqctl shows them: name, wire type, value
    assertEquals(await brokerArguments(q), [
      ["x-max-length-bytes", "long", 3221225472],
      ["x-message-ttl", "long", 3000000000],
      ["x-max-length", "long", 4294967296],
    ]);
    const other = unique("kmq-args");
    for (const value of ["18446744073709551616", "-18446744073709551616", "36893488147419103232", "1e400"]) {
      const r = await run(["declare", "-e", "", "-q", other, "--queue-arg", `x-max-length:=${value}`]);
      assertFailure(r, 2, /^kmq: --queue-arg 'x-max-length': .* cannot be sent exactly/);
      assertEquals(await queueDepth(client, other), -1, `${value}: nothing declared`);
    }
    for (const offset of ["18446744073709551616", "9223372036854775808"]) {
      const r = await run(["consume", "-e", "", "-q", other, "--queue-type", "stream", "--offset", offset]);
      assertFailure(r, 2, /^kmq: --offset \d+ is beyond a stream's last possible offset/);
    }
  });
});

Deno.test("a stream read from offset 2147483648 or 4294967295 starts there, not from the first message", async () => {
  const s = unique("kmq-stream");
  await withCleanup({ queues: [s] }, async () => {
    const p = await run(["produce", "-e", "", "-r", s, "-q", s, "--queue-type", "stream", "--lines"], {
      stdin: numbered(5),
    });
    assertEquals(p.code, 0, p.stderr);
    const all = await run([
      "consume",
      "-e",
      "",
      "-q",
      s,
      "--queue-type",
      "stream",
      "--offset",
      "first",
      "-n",
      "5",
    ], {
      timeoutMs: BOUND,
    });
    assertEquals(all.stdout, numbered(5), all.stderr);
    for (const offset of ["2147483648", "4294967295"]) {
      const r = await run([
        "consume",
        "-e",
        "",
        "-q",
        s,
        "--queue-type",
        "stream",
        "--offset",
        offset,
        "--idle-timeout",
        "2",
      ], {
        timeoutMs: BOUND,
      });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "", `--offset ${offset} read past the end: nothing`);
    }
  });
});

Deno.test("move into its own source is refused however the URLs are spelled; nothing duplicated", async () => {
  const src = unique("kmq-src");
  await withCleanup({ queues: [src] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", src, "-q", src, "--lines"], { stdin: numbered(100) });
    assertEquals(p.code, 0, p.stderr);
    const local = "amqp://guest:guest@localhost:5672";
    const cases = [
      ["--url", `${local}/`, "--to", src, "--to-url", "amqp://guest:guest@127.0.0.1:5672"],
      ["--url", local, "--to", src, "--to-url", "amqp://guest:guest@127.0.0.1:5672/%2F"],
      ["--to-exchange", "", "-r", src],
    ];
    for (const args of cases) {
      const r = await run(["move", "--from", src, ...args], { timeoutMs: BOUND });
      assertFailure(r, 2, /^kmq: the target is the source: queue '.*' on the same broker and vhost/);
      assertEquals(await queueDepth(client, src), 100, args.join(" "));
    }
    // each message's own key through the default exchange: the first that names the source stops it
    const r = await run(["move", "--from", src, "--to-exchange", ""], { timeoutMs: BOUND });
    assertEquals(r.code, 7, r.stderr);
    assertMatch(
      r.stderr,
      /message 1 has the routing key '.*': through the default exchange it would go back/,
    );
    const left = (await drain(client, src)).map((m) => m.bodyToString());
    assertEquals(left.sort(), numbered(100).trimEnd().split("\n").sort());
  });
});

Deno.test("move from a missing source: exit 6 before anything, and the target queue is not created", async () => {
  const [src, dst] = [unique("kmq-missing"), unique("kmq-dst")];
  await withCleanup({ queues: [dst] }, async (client) => {
    const r = await run(["move", "--from", src, "--to", dst], { timeoutMs: BOUND });
    assertFailure(r, 6, new RegExp(`^kmq: queue '${src}' does not exist: nothing to move`));
    assertEquals(await queueDepth(client, dst), -1);
  });
});

/** Messages delivered to a consumer and not yet acked, as the broker counts them. */
async function unacked(q: string): Promise<number> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["list_queues", "-q", "--formatter", "json", "name", "messages_unacknowledged"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const rows = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    name: string;
    messages_unacknowledged: number;
  }[];
  return rows.find((r) => r.name === q)?.messages_unacknowledged ?? -1;
}

Deno.test("consume -n: what was written is acked while kmq waits for more, and -n still takes exactly N", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--lines"], { stdin: numbered(928) });
    assertEquals(p.code, 0, p.stderr);
    const consumer = await startConsumer(["-e", "", "-q", q, "-n", "1000", "-p", "100", "-o", "json"]);
    try {
      await consumer.waitForLines(928, BOUND);
      let held = -1;
      for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
        held = await unacked(q);
        if (held === 0) break;
        await sleep(200);
      }
      assertEquals(held, 0, "every written message acked while waiting");
      const more = await run(["produce", "-e", "", "-r", q, "-q", q, "--lines"], {
        stdin: numbered(100, "more "),
      });
      assertEquals(more.code, 0, more.stderr);
      const r = await consumer.result();
      assertEquals(r.code, 0, r.stderr);
      const bodies = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).body);
      assertEquals(bodies, [
        ...numbered(928).trimEnd().split("\n"),
        ...numbered(72, "more ").trimEnd().split("\n"),
      ]);
      assertEquals(await queueDepth(client, q), 28);
    } finally {
      consumer.kill();
    }
  });
});

Deno.test("lzma: bodies that look almost like UTF-8 decode byte for byte (kmq's own .lzma and Python's reading of it)", async () => {
  const q = unique("kmq-lzma");
  const bodies = [
    new Uint8Array([0x61, 0x62, 0x63, 0xc0, 0x80, 0x64, 0x65, 0x66]), // an overlong NUL
    new Uint8Array([0x61, 0x62, 0x63, 0xed, 0xa0, 0x80, 0x64, 0x65, 0x66]), // a lone surrogate
    new TextEncoder().encode("plain text é"),
  ];
  await withCleanup({ queues: [q] }, async () => {
    for (const body of bodies) {
      const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--compress", "lzma", "--quiet"], {
        stdin: body,
      });
      assertEquals(p.code, 0, p.stderr);
    }
    const raw = await run(["peek", "-q", q, "-n", "3", "-o", "json"]);
    assertEquals(raw.code, 0, raw.stderr);
    // an independent decoder: Python's lzma reads what kmq wrote
    for (const [i, line] of raw.stdout.trimEnd().split("\n").entries()) {
      const out = await new Deno.Command("/usr/bin/python3", {
        args: [
          "-c",
          "import lzma,sys,base64;sys.stdout.buffer.write(lzma.decompress(base64.b64decode(sys.argv[1])))",
          JSON.parse(line).body_base64,
        ],
        stdout: "piped",
      }).output();
      assertEquals(Array.from(out.stdout), Array.from(bodies[i]!), `python, body ${i}`);
    }
    const c = await run(["consume", "-e", "", "-q", q, "-n", "3", "--decode", "-o", "json"]);
    assertEquals(c.code, 0, c.stderr);
    const got = c.stdout.trimEnd().split("\n").map((l) => {
      const r = JSON.parse(l);
      return r.body_base64 !== undefined
        ? Array.from(atob(r.body_base64), (ch) => ch.charCodeAt(0))
        : Array.from(new TextEncoder().encode(r.body));
    });
    assertEquals(got, bodies.map((b) => Array.from(b)));
  });
});

Deno.test("lzma: a 1 GiB bomb of unknown size gives way to SIGTERM at once and stays in the queue", async () => {
  const q = unique("kmq-bomb");
  const made = await new Deno.Command("/usr/bin/python3", {
    args: [
      "-c",
      [
        "import lzma,sys",
        "c=lzma.LZMACompressor(format=lzma.FORMAT_ALONE, preset=0)",
        "z=bytes(1<<24)",
        "sys.stdout.buffer.write(b''.join([c.compress(z) for _ in range(64)]) + c.flush())",
      ].join("\n"),
    ],
    stdout: "piped",
  }).output();
  assert(made.success && made.stdout.length < 1_000_000, "a small .lzma that claims no size");
  await withCleanup({ queues: [q] }, async (client) => {
    const p = await run([
      "produce",
      "-e",
      "",
      "-r",
      q,
      "-q",
      q,
      "-H",
      "compression=application/x-lzma",
      "--quiet",
    ], {
      stdin: made.stdout,
    });
    assertEquals(p.code, 0, p.stderr);
    const consumer = await startConsumer(["-e", "", "-q", q, "-n", "1", "--decode", "-o", "raw"]);
    await sleep(1500); // decoding is under way (it takes half a minute to reach the 128 MiB cap)
    const signalled = Date.now();
    consumer.kill("SIGTERM");
    const r = await consumer.result();
    assertEquals(r.code, 143, r.stderr);
    assert(Date.now() - signalled < 5_000, `ended ${Date.now() - signalled} ms after SIGTERM`);
    assertEquals(r.stdout, "");
    assertEquals(await queueDepth(client, q), 1);
  });
});

Deno.test("move ends only on a source found empty twice: a trickle of new messages is moved, not left behind", async () => {
  const [src, dst] = [unique("kmq-src"), unique("kmq-dst")];
  await withCleanup({ queues: [src, dst] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", src, "-q", src, "--lines", "--quiet"], {
      stdin: numbered(100),
    });
    assertEquals(p.code, 0, p.stderr);
    // one message every 0.6 s: longer than the 0.5 s a move waits before it first asks whether the source is empty
    const trickle = run(["produce", "-e", "", "-r", src, "-q", src, "--lines", "--quiet", "--rate", "1.6"], {
      stdin: numbered(6, "late "),
    });
    const moving = run(["move", "--from", src, "--to", dst], { timeoutMs: BOUND });
    const [t, m] = await Promise.all([trickle, moving]);
    assertEquals(t.code, 0, t.stderr);
    assertEquals(m.code, 0, m.stderr);
    assertEquals(await queueDepth(client, src), 0, `nothing left behind: ${m.stderr}`);
    assertEquals(await queueDepth(client, dst), 106);
  });
});

Deno.test("move -n counts exactly when the source holds equal messages already redelivered; a stream source is refused", async () => {
  const [src, dst, stream] = [unique("kmq-src"), unique("kmq-dst"), unique("kmq-stream")];
  await withCleanup({ queues: [src, dst, stream] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", src, "-q", src, "--lines", "--quiet"], {
      stdin: "same\n".repeat(20),
    });
    assertEquals(p.code, 0, p.stderr);
    const peek = await run(["peek", "-q", src, "-n", "20"]); // every one comes back redelivered
    assertEquals(peek.code, 0, peek.stderr);
    const r = await run(["move", "--from", src, "--to", dst, "-n", "5"], { timeoutMs: BOUND });
    assertEquals(r.code, 0, r.stderr);
    assertEquals([await queueDepth(client, src), await queueDepth(client, dst)], [15, 5]);
    const s = await run(["produce", "-e", "", "-r", stream, "-q", stream, "--queue-type", "stream", "x"]);
    assertEquals(s.code, 0, s.stderr);
    const m = await run(["move", "--from", stream, "--to", dst], { timeoutMs: BOUND });
    assertFailure(m, 2, /is a stream: a move cannot take messages out of it/);
  });
});

/** A web server on a free port whose every answer is `body()`; stopped by the returned function. */
function hostileApi(body: () => ReadableStream<Uint8Array>): { url: string; stop: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(body(), { headers: { "content-type": "application/json" } }),
  );
  return { url: `http://127.0.0.1:${server.addr.port}/`, stop: () => server.shutdown() };
}

Deno.test("info against a hostile API: a trickle is cut off in bounded time, a huge answer at a size limit (exit 4)", async () => {
  const trickle = hostileApi(() => {
    let timer: ReturnType<typeof setInterval> | undefined;
    return new ReadableStream({
      start(c) {
        timer = setInterval(() => c.enqueue(new TextEncoder().encode(" ")), 2_000); // never silent 10 s
      },
      cancel() {
        clearInterval(timer);
      },
    });
  });
  try {
    const started = Date.now();
    const r = await run(["info", "--api-url", trickle.url], { timeoutMs: 60_000 });
    assertFailure(r, 4, /did not finish within 20 s/);
    assert(Date.now() - started < 40_000, `ended after ${Date.now() - started} ms`);
  } finally {
    await trickle.stop();
  }
  // info reads the lists element by element: one element that never ends (a queue name of 400
  // MiB) is cut off at the size limit, and a list of what is not a queue at its first element
  const chunk = new TextEncoder().encode("x".repeat(1 << 20));
  const huge = hostileApi(() => {
    let sent = 0;
    return new ReadableStream({
      pull(c) {
        if (sent++ === 0) c.enqueue(new TextEncoder().encode('[{"name":"'));
        else if (sent < 400) c.enqueue(chunk); // 400 MiB, never closed as JSON
        else c.close();
      },
    });
  });
  try {
    const r = await run(["info", "--api-url", huge.url], { timeoutMs: 60_000 });
    assertFailure(r, 4, /its answer is larger than 256 MiB/);
  } finally {
    await huge.stop();
  }
  const zeros = new TextEncoder().encode("[" + "0,".repeat(1 << 19));
  const notQueues = hostileApi(() => {
    let sent = 0;
    return new ReadableStream({
      pull(c) {
        if (sent++ < 400) c.enqueue(zeros);
        else c.close();
      },
    });
  });
  try {
    const started = Date.now();
    const r = await run(["info", "--api-url", notQueues.url], { timeoutMs: 60_000 });
    assertFailure(r, 4, /is JSON, but not lists of exchanges, queues and bindings/);
    assert(Date.now() - started < 10_000, `a list of zeros was read for ${Date.now() - started} ms`);
  } finally {
    await notQueues.stop();
  }
});

Deno.test("a password file that never ends (/dev/zero) is refused at once (exit 3)", async () => {
  for (const args of [["info"], ["produce", "x"]]) {
    const r = await run(["--password-file", "/dev/zero", ...args], { timeoutMs: BOUND });
    assertFailure(r, 3, /--password-file file '\/dev\/zero' is larger than 1048576 bytes/);
  }
});

Deno.test("exit codes: names over 255 bytes (2), channelMax=1 (move works), JSON of another shape from the API (4)", async () => {
  const long = "q".repeat(300);
  for (const args of [["purge", long], ["delete", "queue", long], ["delete", "exchange", long]]) {
    const r = await run(args);
    assertFailure(r, 2, /name is 300 bytes long: AMQP allows at most 255/);
  }
  const [src, dst] = [unique("kmq-src"), unique("kmq-dst")];
  await withCleanup({ queues: [src, dst] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", src, "-q", src, "--lines", "--quiet"], {
      stdin: numbered(50),
    });
    assertEquals(p.code, 0, p.stderr);
    const url = `${TEST_URL}?channelMax=1`;
    const r = await run(["-u", url, "move", "--from", src, "--to", dst], { timeoutMs: BOUND });
    assertEquals(r.code, 0, r.stderr);
    assertEquals([await queueDepth(client, src), await queueDepth(client, dst)], [0, 50]);
  });
  const other = hostileApi(() =>
    new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"status": "ok", "items": [1, 2, 3]}'));
        c.close();
      },
    })
  );
  try {
    const r = await run(["info", "--api-url", other.url], { timeoutMs: BOUND });
    assertFailure(r, 4, /is JSON, but not lists of exchanges, queues and bindings/);
  } finally {
    await other.stop();
  }
});

Deno.test("hints: a typed argument given as a string says so and suggests :=; --offset 0s and --no-ack on a stream are exit 2", async () => {
  const q = unique("kmq-prio");
  await withCleanup({ queues: [q] }, async () => {
    const fresh = await run(["declare", "-e", "", "-q", q, "--queue-arg", "x-max-priority=10"]);
    assertFailure(
      fresh,
      2,
      /takes x-max-priority as an integer, and key=value gives a string: .*--queue-arg x-max-priority:=10/,
    );
    assertEquals((await run(["declare", "-e", "", "-q", q, "--queue-arg", "x-max-priority:=10"])).code, 0);
    const again = await run(["declare", "-e", "", "-q", q, "--queue-arg", "x-max-priority=10"]);
    assertFailure(
      again,
      6,
      /exists with x-max-priority '10' \(a number or boolean\) where the command line asks for '10' \(a string\): declare it with --queue-arg x-max-priority:=10/,
    );
  });
  const zero = await run(["consume", "-q", "s", "--queue-type", "stream", "--offset", "0s"]);
  assertFailure(zero, 2, /--offset 0s is an empty interval/);
  const noAck = await run(["consume", "-q", "s", "--queue-type", "stream", "--no-ack"]);
  assertFailure(noAck, 2, /a stream needs acknowledgements .*: drop --no-ack/);
});
