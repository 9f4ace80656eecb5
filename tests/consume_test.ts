import { Buffer } from "node:buffer";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  broker,
  drain,
  kmqCommand,
  publishRaw,
  queueDepth,
  run,
  type RunResult,
  startConsumer,
  TEST_URL,
  unique,
  withCleanup,
  withPair,
} from "./helpers.ts";
import { assertAllArrived, linesOf } from "./tally.ts";

async function fill(ex: string, bodies: string[]): Promise<void> {
  const r = await run(["produce", "-l", "-e", ex, "-r", "k"], { stdin: bodies.join("\n") + "\n" });
  assertEquals(r.code, 0, r.stderr);
}

Deno.test("consume -n: prints n messages in order, acks them, leaves the rest untouched", async () => {
  await withPair(async ({ ex, q }, client) => {
    await fill(ex, ["m1", "m2", "m3", "m4", "m5"]);
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "3"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "m1\nm2\nm3\n");
    const rest = await drain(client, q);
    assertEquals(rest.map((m) => m.bodyToString()), ["m4", "m5"]);
    // -n with a smaller prefetch window never pulls (and so never redelivers) extra messages
    assertEquals(rest.map((m) => m.redelivered), [false, false]);
  });
});

Deno.test("consume -n with -p below n: acks as it goes, still no extra delivery", async () => {
  await withPair(async ({ ex, q }, client) => {
    await fill(ex, Array.from({ length: 30 }, (_, i) => `m${i}`));
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "20", "-p", "5"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.split("\n").length - 1, 20);
    const rest = await drain(client, q);
    assertEquals(rest.length, 10);
    assertEquals(rest.every((m) => !m.redelivered), true);
  });
});

Deno.test("consume --idle-timeout: exits 0 once the queue stays quiet", async () => {
  await withPair(async ({ ex, q }) => {
    await fill(ex, ["only"]);
    const started = Date.now();
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "--idle-timeout", "0.5"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "only\n");
    assert(Date.now() - started < 8000, "stopped after the idle timeout");
  });
});

Deno.test("consume -o raw: binary bodies byte-exact", async () => {
  const body = new Uint8Array(256).map((_, i) => i);
  await withPair(async ({ ex, q }, client) => {
    await publishRaw(client, ex, "k", body);
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "1", "-o", "raw"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdoutBytes, body);
  });
});

Deno.test("consume -o json: every property, headers, body or body_base64", async () => {
  await withPair(async ({ ex, q }, client) => {
    await publishRaw(client, ex, "k", "héllo", {
      contentType: "text/plain",
      contentEncoding: "utf-8",
      deliveryMode: 2,
      priority: 3,
      correlationId: "c1",
      replyTo: "r1",
      expiration: "100000",
      messageId: "m1",
      timestamp: new Date(1_700_000_000_000),
      type: "t1",
      appId: "a1",
      headers: { s: "x", n: 42, b: false, nested: { list: [1, "two"] }, raw: new Uint8Array([1, 2, 255]) },
    });
    await publishRaw(client, ex, "k", new Uint8Array([0xff, 0xfe, 0x00]));
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "2", "-o", "json"]);
    assertEquals(r.code, 0, r.stderr);
    const [first, second] = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    const received = Date.parse(first.received_at);
    assert(Math.abs(Date.now() - received) < 60_000, `received_at is when kmq took it: ${first.received_at}`);
    delete first.received_at;
    delete second.received_at;
    assertEquals(first, {
      exchange: ex,
      routing_key: "k",
      redelivered: false,
      properties: {
        content_type: "text/plain",
        content_encoding: "utf-8",
        delivery_mode: 2,
        priority: 3,
        correlation_id: "c1",
        reply_to: "r1",
        expiration: "100000",
        message_id: "m1",
        timestamp: 1_700_000_000,
        type: "t1",
        app_id: "a1",
        headers: { s: "x", n: 42, b: false, nested: { list: [1, "two"] }, raw: { $bytes: "AQL/" } },
      },
      body: "héllo",
    });
    assertEquals(second.body, undefined);
    assertEquals(Buffer.from(second.body_base64, "base64"), Buffer.from([0xff, 0xfe, 0x00]));
    assertEquals(second.properties, {});
  });
});

Deno.test("consume --accept: other content types are rejected without requeue and reported", async () => {
  await withPair(async ({ ex, q }, client) => {
    await publishRaw(client, ex, "k", "{}", { contentType: "application/json" });
    await publishRaw(client, ex, "k", "plain", { contentType: "text/plain" });
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "1", "--accept", "text/plain"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "plain\n");
    assertMatch(
      r.stderr,
      /rejected a message with content type 'application\/json'.*not in --accept text\/plain/,
    );
    assertEquals(await queueDepth(client, q), 0);
  });
});

Deno.test("consume: SIGINT stops cleanly with exit 130 and loses nothing", async () => {
  await withPair(async ({ ex, q }, client) => {
    const total = 3000;
    await fill(ex, Array.from({ length: total }, (_, i) => String(i + 1)));
    const consumer = await startConsumer(["-e", ex, "-q", q, "-r", "k", "-p", "50"]);
    await consumer.waitForLines(10);
    consumer.kill("SIGINT");
    const r = await consumer.result();
    assertEquals(r.code, 130, r.stderr);
    assertMatch(
      r.stderr,
      /stopped by SIGINT: \d+ message\(s\) written and settled; the rest stay in the queue/,
    );
    const printed = linesOf(r.stdout);
    const left = (await drain(client, q)).map((m) => m.bodyToString() ?? "");
    // every message was either printed (and acked) or is still in the queue: exactly once
    assertAllArrived(total, [...printed, ...left], 0);
    assert(printed.length >= 10 && left.length > 0, "the consumer was stopped mid-stream");
  });
});

Deno.test("consume --no-ack: broker acks on delivery; -n still takes only n", async () => {
  await withPair(async ({ ex, q }, client) => {
    await fill(ex, ["a", "b", "c"]);
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "2", "--no-ack"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "a\nb\n");
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["c"]);
  });
});

Deno.test("consume -q '': a server-named queue taps a fanout exchange", async () => {
  const ex = unique("kmq-fan");
  await withCleanup({ exchanges: [ex] }, async () => {
    const consumer = await startConsumer(["-q", "", "-e", ex, "-t", "fanout"]);
    try {
      const p = await run(["produce", "-e", ex, "-t", "fanout", "tapped"]);
      assertEquals(p.code, 0, p.stderr);
      assertEquals(await consumer.waitForLines(1), ["tapped"]);
    } finally {
      consumer.kill("SIGTERM");
    }
    const r = await consumer.result();
    assertEquals(r.code, 143, r.stderr);
    assertMatch(r.stderr, /consuming from queue 'amq\.gen-/);
    assertMatch(r.stderr, /the queue is deleted with this consumer/);
  });
});

Deno.test("consume -r repeated: one binding per key", async () => {
  const ex = unique("kmq-ex");
  const q = unique("kmq-q");
  await withCleanup({ queues: [q], exchanges: [ex] }, async () => {
    const d = await run(["declare", "-e", ex, "-t", "topic", "-q", q, "-r", "a.*", "-r", "b.#"]);
    assertEquals(d.code, 0, d.stderr);
    for (const key of ["a.x", "b.y.z"]) {
      const p = await run(["produce", "-e", ex, "-t", "topic", "-r", key, key]);
      assertEquals(p.code, 0, p.stderr);
    }
    const r = await run(["consume", "-e", ex, "-t", "topic", "-q", q, "-r", "a.*", "-r", "b.#", "-n", "2"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "a.x\nb.y.z\n");
  });
});

Deno.test("consume -e '': consumes an existing queue as it is, no binding", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async () => {
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "plain queue"]);
    assertEquals(p.code, 0, p.stderr);
    const r = await run(["consume", "-e", "", "-q", q, "-n", "1"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "plain queue\n");
  });
});

Deno.test("consume --no-declare: a missing queue is exit 6 naming it", async () => {
  const q = unique("kmq-missing");
  const r = await run(["consume", "--no-declare", "-e", "", "-q", q, "-n", "1"]);
  assertFailure(r, 6, new RegExp(`NOT_FOUND - no queue '${q}'`));
});

Deno.test("consume: a durable conflict on the queue is exit 6 naming the queue", async () => {
  await withPair(async ({ ex, q }) => {
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "--no-durable", "-n", "1"]);
    assertFailure(
      r,
      6,
      new RegExp(
        `declaring (exchange '${ex}'|queue '${q}'): PRECONDITION_FAILED - inequivalent arg 'durable'`,
      ),
    );
  });
});

Deno.test("consume: an exclusive queue owned by another connection is exit 6 (RESOURCE_LOCKED)", async () => {
  const q = unique("kmq-excl");
  const owner = await broker();
  try {
    const ch = await owner.channel();
    await ch.queueDeclare(q, { exclusive: true, durable: false });
    const r = await run(["consume", "-e", "", "-q", q, "--no-durable", "-n", "1"]);
    assertFailure(r, 6, /RESOURCE_LOCKED.*another connection holds it exclusively/);
  } finally {
    await owner.close();
  }
});

Deno.test("consume: output that cannot be written is exit 1, and the message stays in the queue", async () => {
  await withPair(async ({ ex, q }, client) => {
    await fill(ex, ["kept"]);
    const [cmd, pre] = kmqCommand();
    const quoted = [cmd, ...pre, "consume", "-e", ex, "-q", q, "-r", "k", "-n", "1"].map((a) => `'${a}'`);
    const out = await new Deno.Command("bash", {
      args: ["-c", `exec ${quoted.join(" ")} > /dev/full`],
      env: { KMQ_URL: TEST_URL, NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).output();
    const r: RunResult = {
      code: out.code,
      stdout: "",
      stdoutBytes: new Uint8Array(),
      stderr: new TextDecoder().decode(out.stderr),
    };
    assertFailure(r, 1, /writing to stdout: .*(ENOSPC|no space)/i);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["kept"]);
  });
});

Deno.test("consume --decode: gzip and deflate bodies come out plain; one that does not decode stays in the queue, exit 8", async () => {
  const { gzipSync, deflateSync } = await import("node:zlib");
  await withPair(async ({ ex, q }, client) => {
    await publishRaw(client, ex, "k", gzipSync("zipped text"), {
      contentEncoding: "gzip",
      contentType: "text/plain",
    });
    await publishRaw(client, ex, "k", new Uint8Array([1, 2, 3]), { contentEncoding: "gzip" });
    await publishRaw(client, ex, "k", deflateSync("deflated text"), { contentEncoding: "deflate" });
    const r = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "3", "--decode", "-o", "json"]);
    assertEquals(r.code, 8, r.stderr);
    assertMatch(r.stderr, /1 message\(s\) not handled: their body did not decode/);
    const records = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assertEquals(records.map((x) => x.body), ["zipped text"]);
    // the body is no longer encoded, so the record no longer says it is
    assertEquals(records[0].properties.content_encoding, undefined);
    assertMatch(r.stderr, /a message \(routing key 'k'\) stays in the queue: its gzip body does not decode/);
    // the undecodable one is back in its place, untouched, and the one after it was never taken
    const left = await drain(client, q);
    assertEquals(left.map((m) => Array.from(m.body!)), [[1, 2, 3], Array.from(deflateSync("deflated text"))]);
    assertEquals(left[0]!.properties.contentEncoding, "gzip");
    const plain = await run(["consume", "-e", "", "-q", q, "--idle-timeout", "1"]);
    assertEquals(plain.code, 0, plain.stderr);
  });
});

Deno.test("consume -n with --decode counts what it took: --no-ack shows an undecodable one as received; a command stops at it", async () => {
  const { gzipSync } = await import("node:zlib");
  const fillMixed = async (client: Awaited<ReturnType<typeof broker>>, ex: string) => {
    await publishRaw(client, ex, "k", gzipSync("one"), { contentEncoding: "gzip" });
    await publishRaw(client, ex, "k", new Uint8Array([0x62, 0x61, 0x64]), { contentEncoding: "gzip" });
    for (const b of ["three", "four"]) {
      await publishRaw(client, ex, "k", gzipSync(b), { contentEncoding: "gzip" });
    }
  };
  await withPair(async ({ ex, q }, client) => {
    await fillMixed(client, ex);
    const noAck = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "2", "--decode", "--no-ack"]);
    assertEquals([noAck.code, noAck.stdout], [0, "one\nbad\n"], noAck.stderr);
    assertMatch(noAck.stderr, /is shown as received: its gzip body does not decode/);
    assertEquals(await queueDepth(client, q), 2, "-n 2 took two, not three");
    await drain(client, q);

    await fillMixed(client, ex);
    const cmd = await run(["consume", "-e", ex, "-q", q, "-r", "k", "-n", "3", "--decode", "--", "cat"]);
    assertEquals([cmd.code, cmd.stdout], [8, "one"], cmd.stderr);
    const left = await drain(client, q);
    assertEquals(left.length, 3, "the undecodable one and those after it stay");
    assertEquals(Array.from(left[0]!.body!), [0x62, 0x61, 0x64]);
  });
});
