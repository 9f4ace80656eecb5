import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  drain,
  queueDepth,
  run,
  Running,
  sleep,
  unique,
  withCleanup,
  withPair,
} from "./helpers.ts";

Deno.test("produce: each argument is one message, in order", async () => {
  await withPair(async ({ ex, q }, client) => {
    const r = await run(["produce", "-e", ex, "-r", "k", "one", "two", "three"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["one", "two", "three"]);
  });
});

Deno.test("produce: all of stdin is one message, bytes kept exactly", async () => {
  const bytes = new Uint8Array(70_000).map((_, i) => (i * 7919) % 256); // binary, spans several frames
  await withPair(async ({ ex, q }, client) => {
    const r = await run(["produce", "-e", ex, "-r", "k"], { stdin: bytes });
    assertEquals(r.code, 0, r.stderr);
    const [m, ...rest] = await drain(client, q);
    assertEquals(rest.length, 0);
    assertEquals(m?.body, bytes);
  });
});

Deno.test("produce --lines: one message per line, \\r\\n handled, last line without newline counts", async () => {
  await withPair(async ({ ex, q }, client) => {
    const r = await run(["produce", "-l", "-e", ex, "-r", "k"], { stdin: "a\r\nb\n\nc" });
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["a", "b", "", "c"]);
  });
});

Deno.test("produce --lines: 20,000 lines all arrive, each confirmed", async () => {
  const lines = Array.from({ length: 20_000 }, (_, i) => `line-${i}`);
  await withPair(async ({ ex, q }, client) => {
    const r = await run(["produce", "-l", "-e", ex, "-r", "k"], { stdin: lines.join("\n") + "\n" });
    assertEquals(r.code, 0, r.stderr);
    const got = (await drain(client, q)).map((m) => m.bodyToString());
    assertEquals(got, lines, "every line, once, in order");
  });
});

Deno.test("produce -f: each file is one message; missing file and directory are exit 3", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.bin`, new Uint8Array([0, 255, 10, 13]));
    await Deno.writeTextFile(`${dir}/b.txt`, "bee");
    await withPair(async ({ ex, q }, client) => {
      const r = await run(["produce", "-e", ex, "-r", "k", "-f", `${dir}/a.bin`, "-f", `${dir}/b.txt`]);
      assertEquals(r.code, 0, r.stderr);
      const msgs = await drain(client, q);
      assertEquals(msgs.map((m) => m.body), [
        new Uint8Array([0, 255, 10, 13]),
        new TextEncoder().encode("bee"),
      ]);

      assertFailure(
        await run(["produce", "-e", ex, "-r", "k", "-f", `${dir}/nope`]),
        3,
        /nope' does not exist/,
      );
      assertFailure(await run(["produce", "-e", ex, "-r", "k", "-f", dir]), 3, /is a directory/);
      assertEquals(await queueDepth(client, q), 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("produce: every property option reaches the message", async () => {
  await withPair(async ({ ex, q }, client) => {
    const r = await run([
      "produce",
      "-e",
      ex,
      "-r",
      "k",
      "-C",
      "application/x-test",
      "-E",
      "binary",
      "--transient",
      "--priority",
      "7",
      "--expiration",
      "60000",
      "--message-id",
      "mid-1",
      "--correlation-id",
      "cid-1",
      "--reply-to",
      "replies",
      "--type",
      "greeting",
      "--app-id",
      "kmq-tests",
      "-H",
      "trace=abc",
      "-H",
      "attempt:=3",
      "-H",
      "ok:=true",
      "-H",
      'nested:={"a":[1,"x"]}',
      "body",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const [m] = await drain(client, q);
    assert(m, "message arrived");
    const p = m.properties;
    assertEquals(
      [p.contentType, p.contentEncoding, p.deliveryMode, p.priority, p.expiration, p.messageId],
      ["application/x-test", "binary", 1, 7, "60000", "mid-1"],
    );
    assertEquals([p.correlationId, p.replyTo, p.type, p.appId], [
      "cid-1",
      "replies",
      "greeting",
      "kmq-tests",
    ]);
    assertEquals(p.headers, { trace: "abc", attempt: 3, ok: true, nested: { a: [1, "x"] } });
  });
});

Deno.test("produce --json: sends application/json; invalid JSON is exit 3 and nothing is sent", async () => {
  await withPair(async ({ ex, q }, client) => {
    const ok = await run(["produce", "--json", "-e", ex, "-r", "k", '{"task": "add", "args": [1, 2]}']);
    assertEquals(ok.code, 0, ok.stderr);
    const [m] = await drain(client, q);
    assertEquals(m?.properties.contentType, "application/json");
    assertEquals(m?.properties.contentEncoding, "utf-8");

    const bad = await run(["produce", "--json", "-e", ex, "-r", "k", "{}", "{nope"]);
    assertFailure(bad, 3, /argument 2 is not valid JSON/);
    assertEquals(await queueDepth(client, q), 0);
  });
});

Deno.test("produce --json --lines: a bad line stops with its number and the confirmed count", async () => {
  await withPair(async ({ ex, q }, client) => {
    const r = await run(["produce", "--json", "-l", "-e", ex, "-r", "k"], { stdin: '1\n"two"\n{bad\n4\n' });
    assertFailure(r, 3, /line 3 is not valid JSON.*2 message\(s\) before it were published and confirmed/);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["1", '"two"']);
  });
});

Deno.test("produce: an unroutable message is exit 7 with the count and routing key", async () => {
  await withPair(async ({ ex, q }, client) => {
    const r = await run(["produce", "-e", ex, "-r", "nobody-listens", "lost?", "lost too?"]);
    assertEquals(r.code, 7, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assertMatch(
      lines[0]!,
      /argument 1 with routing key 'nobody-listens' was returned as unroutable: no queue is bound/,
    );
    assertMatch(
      lines.at(-1)!,
      /2 of 2 messages not delivered: 2 returned as unroutable \(argument 1 with routing key 'nobody-listens', argument 2 with routing key 'nobody-listens'\)/,
    );
    assertEquals(await queueDepth(client, q), 0);
  });
});

Deno.test("produce -l: a return is said when it happens, while the input is still open", async () => {
  await withPair(async ({ ex }) => {
    const p = new Running(["produce", "-l", "-e", ex, "-r", "nobody-listens"], { pipeStdin: true });
    try {
      await p.feed("first line\n");
      await p.waitForStderr("line 1 with routing key 'nobody-listens' was returned as unroutable");
    } finally {
      await p.endInput();
    }
    const r = await p.result();
    assertEquals(r.code, 7, r.stderr);
  });
});

Deno.test("produce --no-mandatory: unroutable messages are dropped by the broker, exit 0", async () => {
  await withPair(async ({ ex }) => {
    const r = await run(["produce", "--no-mandatory", "-e", ex, "-r", "nobody-listens", "dropped"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stderr, "");
  });
});

Deno.test("produce --no-confirm: messages still arrive", async () => {
  await withPair(async ({ ex, q }, client) => {
    const r = await run(["produce", "--no-confirm", "-l", "-e", ex, "-r", "k"], { stdin: "1\n2\n3\n" });
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["1", "2", "3"]);
  });
});

Deno.test("produce -q: declares and binds the queue, so the message waits there", async () => {
  const ex = unique("kmq-ex");
  const q = unique("kmq-q");
  await withCleanup({ queues: [q], exchanges: [ex] }, async (client) => {
    const r = await run(["produce", "-e", ex, "-t", "topic", "-q", q, "-r", "a.b", "hello"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["hello"]);
  });
});

Deno.test("produce -e '': publishes to the default exchange straight into a queue", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(q, { durable: true });
    const r = await run(["produce", "-e", "", "-r", q, "direct"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["direct"]);
  });
});

Deno.test("produce --no-declare: a missing exchange is exit 6 naming it", async () => {
  const ex = unique("kmq-missing");
  const r = await run(["produce", "--no-declare", "-e", ex, "x"]);
  assertFailure(r, 6, new RegExp(`NOT_FOUND - no exchange '${ex}'.*kmq declare`));
});

Deno.test("produce: an exchange type conflict is exit 6 naming the exchange", async () => {
  const ex = unique("kmq-ex");
  await withCleanup({ exchanges: [ex] }, async (client) => {
    const ch = await client.channel();
    await ch.exchangeDeclare(ex, "fanout", { durable: true });
    const r = await run(["produce", "-e", ex, "-r", "k", "x"]);
    assertFailure(
      r,
      6,
      new RegExp(`declaring exchange '${ex}': PRECONDITION_FAILED - inequivalent arg 'type'`),
    );
  });
});

Deno.test("produce: empty stdin is exit 3, nothing sent", async () => {
  await withPair(async ({ ex, q }, client) => {
    assertFailure(await run(["produce", "-e", ex, "-r", "k"], { stdin: "" }), 3, /standard input was empty/);
    assertFailure(
      await run(["produce", "-l", "-e", ex, "-r", "k"], { stdin: "" }),
      3,
      /standard input was empty/,
    );
    assertEquals(await queueDepth(client, q), 0);
  });
});

Deno.test("produce: --verbose prints the closing summary", async () => {
  await withPair(async ({ ex }) => {
    const r = await run(["-v", "produce", "-e", ex, "-r", "k", "a", "b"]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /published 2, confirmed 2, returned 0, nacked 0 in [\d.]+ s \(\d+ msg\/s\)/);
  });
});

Deno.test("produce: messages the broker nacks are exit 7, named by origin", async () => {
  const q = unique("kmq-full");
  await withCleanup({ queues: [q] }, async (client) => {
    // a full queue that rejects new publishes makes RabbitMQ nack them
    const ch = await client.channel();
    await ch.queueDeclare(q, { durable: true }, { "x-max-length": 1, "x-overflow": "reject-publish" });
    const r = await run(["produce", "-e", "", "-r", q, "first", "second", "third"]);
    assertFailure(r, 7, /2 of 3 messages not delivered: 2 nacked by the broker \(argument 2, argument 3\)/);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["first"]);
  });
});

Deno.test("produce: SIGINT while stdin is open but quiet stops at once: exit 130, what was sent is confirmed", async () => {
  await withPair(async ({ ex, q }, client) => {
    const p = new Running(["produce", "-l", "-e", ex, "-r", "k"], { pipeStdin: true });
    try {
      await p.feed("one\ntwo\nthree\n");
      const deadline = Date.now() + 10_000;
      while ((await queueDepth(client, q)) < 3 && Date.now() < deadline) await sleep(50);
      p.kill("SIGINT");
      const started = Date.now();
      const r = await p.result();
      // did not wait for more input: it ended well before the test's own 10 s bound
      assert(Date.now() - started < 10_000, "did not wait for more input");
      assertEquals(r.code, 130, r.stderr);
      assertMatch(r.stderr, /published 3, confirmed 3, returned 0, nacked 0/);
      assertMatch(r.stderr, /stopped by SIGINT: the 3 message\(s\) sent were all confirmed/);
      // where to go on from: the line after the last one confirmed
      assertMatch(
        r.stderr,
        /the rest of the input was not sent; resume from line 4 \(tail -n \+4 of the same input\)/,
      );
      assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["one", "two", "three"]);
    } finally {
      p.kill("SIGKILL");
    }
  });
});
