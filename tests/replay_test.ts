/** `kmq consume -o json` then `kmq produce --jsonl`: every byte, property and header type survives. */
import { noPika, pika, PIKA_URL } from "./pika/pika.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, drain, run, unique, withCleanup } from "./helpers.ts";

Deno.test({
  name: "replay: what pika wrote reads back identically in pika after a kmq dump and replay",
  ignore: noPika,
}, async () => {
  const [reference, source, copy] = [unique("kmq-ref"), unique("kmq-src"), unique("kmq-copy")];
  await withCleanup({ queues: [reference, source, copy] }, async () => {
    await pika("publish", PIKA_URL, reference, source);
    const dump = await run(["consume", "-e", "", "-q", source, "-n", "1", "-o", "json"]);
    assertEquals(dump.code, 0, dump.stderr);
    const replay = await run(["produce", "--jsonl", "-e", "", "-r", copy, "-q", copy], {
      stdin: dump.stdout,
    });
    assertEquals(replay.code, 0, replay.stderr);
    const expected = JSON.parse(await pika("read", PIKA_URL, reference));
    const got = JSON.parse(await pika("read", PIKA_URL, copy));
    assertEquals(got, expected);
    assertEquals(got.headers.int_2p31, ["long", "2147483653L"]); // not wrapped to 32 bits
    assertEquals(got.headers.int_beyond_json, ["long", "9007199254740993L"]); // not rounded
    assertEquals(got.headers.decimal, ["Decimal", "12.345"]);
    assertEquals(got.timestamp, "18446744073709551615"); // unsigned 64-bit, not -1
    assertEquals(got.headers["__proto__"], ["str", "'proto'"]); // a key, not the prototype
    assertEquals(got.headers.constructor.__proto__, { valueOf: ["int", "3"] });
  });
});

Deno.test("replay: typed header values keep their wire type through dump and replay", async () => {
  const [a, b] = [unique("kmq-a"), unique("kmq-b")];
  const typed = {
    f32: { $float: 1.5 },
    f64: { $double: 2 },
    pi: 3.141592653589793,
    i8: { $int8: -5 },
    u8: { $uint8: 250 },
    i16: { $int16: -300 },
    u16: { $uint16: 65000 },
    u32: { $uint32: 4000000000 },
    i64small: { $int64: "7" },
    dec: { $decimal: "-0.05" },
    ts: { $timestamp: 1700000000 },
    raw: { $bytes: "AAEC" },
    dollar: { $table: { $odd: "key" } },
  };
  await withCleanup({ queues: [a, b] }, async () => {
    const headers = Object.entries(typed).flatMap(([k, v]) => ["-H", `${k}:=${JSON.stringify(v)}`]);
    const p = await run(["produce", "-e", "", "-r", a, "-q", a, ...headers, "--priority", "0", "x"]);
    assertEquals(p.code, 0, p.stderr);
    const first = await run(["consume", "-e", "", "-q", a, "-n", "1", "-o", "json"]);
    assertEquals(first.code, 0, first.stderr);
    const record = JSON.parse(first.stdout);
    assertEquals(record.properties.headers, typed);
    assertEquals(record.properties.priority, 0);
    const replay = await run(["produce", "--jsonl", "-e", "", "-r", b, "-q", b], { stdin: first.stdout });
    assertEquals(replay.code, 0, replay.stderr);
    const second = await run(["consume", "-e", "", "-q", b, "-n", "1", "-o", "json"]);
    assertEquals(JSON.parse(second.stdout).properties, record.properties);
  });
});

Deno.test("replay: binary bodies byte-exact; records keep their own exchange and routing key", async () => {
  const q = unique("kmq-q");
  const bodies = [new Uint8Array([0, 255, 254, 10, 13]), new TextEncoder().encode("plain\nwith newline")];
  await withCleanup({ queues: [q] }, async (client) => {
    const records = bodies.map((b, i) =>
      JSON.stringify({
        exchange: "",
        routing_key: q,
        properties: { message_id: `m${i}` },
        ...(i === 0
          ? { body_base64: btoa(String.fromCharCode(...b)) }
          : { body: new TextDecoder().decode(b) }),
      })
    );
    const d = await run(["declare", "-e", "", "-q", q]);
    assertEquals(d.code, 0, d.stderr);
    const r = await run(["produce", "--jsonl"], { stdin: records.join("\r\n") });
    assertEquals(r.code, 0, r.stderr);
    const got = await drain(client, q);
    assertEquals(got.map((m) => m.body), bodies);
    assertEquals(got.map((m) => m.properties.messageId), ["m0", "m1"]);
    // a record's properties are complete: kmq adds no content type of its own
    assertEquals(got[0]?.properties.contentType, undefined);
  });
});

Deno.test("replay: a malformed record stops with exit 3, its line number and the confirmed count", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const good = JSON.stringify({ body: "ok" });
    const input = [good, good, '{"body": 1}', good].join("\n");
    const r = await run(["produce", "--jsonl", "-e", "", "-r", q, "-q", q], { stdin: input });
    assertFailure(
      r,
      3,
      /line 3 is not a valid record: 'body' must be a string.*the 2 message\(s\) before it were published and confirmed/,
    );
    assertEquals((await drain(client, q)).length, 2);
    const bad = await run(["produce", "--jsonl", "-e", "", "-r", q], {
      stdin: '{"body": "x", "properties": {"headers": {"n": {"$int8": 300}}}}',
    });
    assertFailure(
      bad,
      3,
      /line 1 is not a valid record: properties.headers 'n': \$int8 takes an integer from -128 to 127/,
    );
  });
});

Deno.test("produce --repeat and --rate", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const r = await run(["produce", "-e", "", "-r", q, "-q", q, "--repeat", "3", "a", "b"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["a", "b", "a", "b", "a", "b"]);
    const started = Date.now();
    const slow = await run(["produce", "-e", "", "-r", q, "--rate", "40", "--repeat", "21", "tick"]);
    const elapsed = Date.now() - started;
    assertEquals(slow.code, 0, slow.stderr);
    // 21 messages at 40/s take at least half a second; no upper bound, machines differ
    assert(elapsed >= 450, `--rate 40 sent 21 messages in ${elapsed} ms`);
    assertEquals((await drain(client, q)).length, 21);
  });
});

Deno.test("produce: the summary counts, and --quiet silences it", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async () => {
    const v = await run(["-v", "produce", "-e", "", "-r", q, "-q", q, "a"]);
    assertMatch(v.stderr, /published 1, confirmed 1, returned 0, nacked 0 in/);
    const quiet = await run(["-v", "produce", "--quiet", "-e", "", "-r", q, "a"]);
    assertEquals(quiet.code, 0);
    assertEquals(quiet.stderr.replace(/kmq: (connecting|connected|declaring|checking).*\n/g, ""), "");
  });
});
