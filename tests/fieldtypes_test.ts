/**
 * Every AMQP field type at its limits, 64-bit timestamps and keys that JavaScript objects
 * mishandle, through every path a message takes in kmq: produce → consume -o json → replay, and
 * move; the wire bytes of the copies are compared with the original's, byte for byte.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals } from "./assert.ts";
import { run, TEST_URL, unique, withCleanup } from "./helpers.ts";

const ALL_BYTES = btoa(String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i)));

/** Written as `kmq consume -o json` writes it, so the dump must reproduce this text exactly. */
const HEADERS_JSON = `{
  "i8min": {"$int8": -128}, "i8max": {"$int8": 127}, "u8min": {"$uint8": 0}, "u8max": {"$uint8": 255},
  "i16min": {"$int16": -32768}, "i16max": {"$int16": 32767}, "u16max": {"$uint16": 65535},
  "i32min": -2147483648, "i32max": 2147483647, "u32max": {"$uint32": 4294967295},
  "beyond32": 2147483648, "safe": 9007199254740991,
  "i64min": {"$int64": "-9223372036854775808"}, "i64max": {"$int64": "9223372036854775807"},
  "above53": {"$int64": "9007199254740993"},
  "f32max": {"$float": 3.4028234663852886e+38}, "f32min": {"$float": 1.401298464324817e-45},
  "dmax": {"$double": 1.7976931348623157e+308}, "dsmall": 5e-324, "dneg": -1.5, "dint": {"$double": 2},
  "decmin": {"$decimal": "-2147483.648"}, "decmax": {"$decimal": "2147483647"}, "dec0": {"$decimal": "0.00"},
  "ts0": {"$timestamp": 0}, "ts31": {"$timestamp": 2147483648},
  "ts53": {"$timestamp": "9007199254740992"}, "tsmax": {"$timestamp": "18446744073709551615"},
  "empty": {"$bytes": ""}, "bytes": {"$bytes": "${ALL_BYTES}"},
  "nested": {"a": [1, {"b": [{"$int8": -1}, {"c": {"$timestamp": "18446744073709551615"}}]}, [], {}]},
  "dollar": {"$table": {"$int64": "not a type"}},
  "__proto__": {"__proto__": [{"__proto__": "deep"}]},
  "constructor": "c", "toString": {"$int16": 1}, "hasOwnProperty": null, "valueOf": true, "": "empty key"
}`;
const HEADERS = JSON.parse(HEADERS_JSON);
/** Property timestamps at the edges: 0, 2^31, 2^53 and 2^64-1 (beyond 2^53 as digits). */
const TIMESTAMPS = [0, 2147483648, "9007199254740992", "18446744073709551615"];

function records(): string {
  return TIMESTAMPS.map((timestamp, i) =>
    JSON.stringify({
      properties: { headers: HEADERS, timestamp, message_id: `m${i}`, priority: 0, delivery_mode: 2 },
      body_base64: ALL_BYTES,
    }) + "\n"
  ).join("");
}

/** The content-header frames' property bytes of every message in `queue`, taken with basic.get. */
async function rawProperties(queue: string): Promise<Uint8Array[]> {
  const client = new AMQPClient(TEST_URL);
  await client.connect();
  const frames: Uint8Array[] = [];
  const seen = client as unknown as { parseFrames(v: DataView): void };
  const parse = seen.parseFrames.bind(client);
  seen.parseFrames = (view: DataView) => {
    // frame type 2: a content header; after type, channel, size, class, weight and body size
    if (view.getUint8(0) === 2) {
      frames.push(new Uint8Array(view.buffer, view.byteOffset + 19, view.byteLength - 20).slice());
    }
    parse(view);
  };
  try {
    const ch = await client.channel();
    while (await ch.basicGet(queue, { noAck: true }));
  } finally {
    await client.close().catch(() => {});
  }
  return frames;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("field types at their limits and hostile keys: JSON → wire → JSON → wire is exact, and so is move", async () => {
  const [a, copy, b, moved] = [unique("kmq-a"), unique("kmq-orig"), unique("kmq-b"), unique("kmq-moved")];
  await withCleanup({ queues: [a, copy, b, moved] }, async () => {
    for (const q of [a, copy]) {
      const p = await run(["produce", "--jsonl", "-e", "", "-r", q, "-q", q], { stdin: records() });
      assertEquals(p.code, 0, p.stderr);
    }
    const dump = await run(["consume", "-e", "", "-q", a, "-n", "4", "-o", "json"]);
    assertEquals(dump.code, 0, dump.stderr);
    const lines = dump.stdout.trimEnd().split("\n");
    assertEquals(lines.length, 4, dump.stdout);
    lines.forEach((line, i) => {
      // compared as text: JSON.parse would round the 64-bit values the test is about
      const props = line.slice(line.indexOf(`"properties":`) + 13, line.lastIndexOf(`,"body_base64"`));
      const expected = JSON.stringify({
        delivery_mode: 2,
        priority: 0,
        message_id: `m${i}`,
        timestamp: TIMESTAMPS[i],
        headers: HEADERS,
      });
      assertEquals(props, expected, `message ${i}`);
    });
    const replay = await run(["produce", "--jsonl", "-e", "", "-r", b, "-q", b], { stdin: dump.stdout });
    assertEquals(replay.code, 0, replay.stderr);
    const moving = await run(["move", "--from", copy, "--to", moved]);
    assertEquals(moving.code, 0, moving.stderr);
    const original = await rawProperties(moved); // a move keeps the bytes: checked against the replay
    const replayed = await rawProperties(b);
    assertEquals(original.length, 4);
    assertEquals(replayed.map(hex), original.map(hex));
    // an independent look at the bytes: the key __proto__ is there, and 2^64-1 as eight 0xff
    const wire = hex(original[3]!);
    assert(wire.includes(hex(new TextEncoder().encode("\x09__proto__F"))), "a __proto__ table on the wire");
    assert(wire.includes(`05${hex(new TextEncoder().encode("tsmax"))}54${"ff".repeat(8)}`), "tsmax: T, ff×8");
  });
});

Deno.test("a timestamp outside what AMQP holds is refused on replay (exit 3), never wrapped", async () => {
  for (const timestamp of [-1, "18446744073709551616", 1.5, "1e3"]) {
    const q = unique("kmq-ts");
    await withCleanup({ queues: [q] }, async (client) => {
      const line = JSON.stringify({ properties: { timestamp }, body: "x" });
      const r = await run(["produce", "--jsonl", "-e", "", "-r", q, "-q", q], { stdin: line + "\n" });
      assertEquals(r.code, 3, `${timestamp}: ${r.stderr}`);
      assert(
        /timestamp takes whole seconds since the epoch from 0 to 18446744073709551615/.test(r.stderr),
        r.stderr,
      );
      const ch = await client.channel();
      assertEquals((await ch.queueDeclare(q, { passive: true })).messageCount, 0);
    });
  }
});
