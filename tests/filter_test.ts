/**
 * --filter on consume and move: each variable against messages with real properties and headers,
 * what happens to the messages that do not match (held and left in order on a named queue, acked
 * on a tap or with --ack-unmatched), and malformed expressions (exit 2, nothing taken).
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  drain,
  publishRaw,
  queueDepth,
  run,
  startConsumer,
  unique,
  withCleanup,
} from "./helpers.ts";

const EXCHANGE_TYPE = "topic";

/** Eight messages, each with something another lacks; bodies name them. */
async function publishFixture(client: AMQPClient, ex: string, q: string): Promise<void> {
  await publishRaw(client, ex, "eu.orders", JSON.stringify({ id: "a", amount: 50 }), {
    contentType: "application/json",
    headers: { tenant: "acme", retries: 3 },
  });
  await publishRaw(client, ex, "us.orders", JSON.stringify({ id: "b", amount: 150 }), {
    contentType: "application/json",
    messageId: "m-b",
    headers: { tenant: "globex" },
  });
  await publishRaw(client, ex, "eu.audit", "plain apple text", { headers: { tenant: "acme", retries: 1 } });
  await publishRaw(client, "", q, JSON.stringify({ id: "d", amount: 1000, tags: ["vip"] }), {
    headers: { nested: { level: "deep" } },
  });
  await publishRaw(client, ex, "eu.orders", "not json {", { priority: 5 });
}

const ALL = [
  `{"id":"a","amount":50}`,
  `{"id":"b","amount":150}`,
  "plain apple text",
  `{"id":"d","amount":1000,"tags":["vip"]}`,
  "not json {",
];

/** A fresh topic exchange and queue bound with '#', holding the fixture. */
function withFixture(fn: (names: { ex: string; q: string }, client: AMQPClient) => Promise<void>) {
  const ex = unique("kmq-fx");
  const q = unique("kmq-fq");
  return withCleanup({ queues: [q], exchanges: [ex] }, async (client) => {
    const ch = await client.channel();
    await ch.exchangeDeclare(ex, EXCHANGE_TYPE, { durable: true });
    await ch.queueDeclare(q, { durable: true });
    await ch.queueBind(q, ex, "#");
    await ch.close();
    await publishFixture(client, ex, q);
    await fn({ ex, q }, client);
  });
}

/** `kmq consume` on the fixture's queue, bound with '#', with these options. */
const consumeFixture = (ex: string, q: string, ...options: string[]) =>
  run(["consume", "-e", ex, "-t", EXCHANGE_TYPE, "-q", q, "-r", "#", ...options]);

const bodies = async (client: AMQPClient, q: string) =>
  (await drain(client, q)).map((m) => new TextDecoder().decode(m.body ?? new Uint8Array()));

const CASES: [string, number[]][] = [
  [`body.contains("apple")`, [2]],
  [`json.amount > 100`, [1, 3]],
  [`json.tags.exists(t, t == "vip")`, [3]],
  [`routing_key.startsWith("eu.")`, [0, 2, 4]],
  [`exchange == ""`, [3]],
  [`properties.content_type == "application/json"`, [0, 1]],
  [`has(properties.message_id)`, [1]],
  [`properties.priority == 5`, [4]],
  [`headers["tenant"] == "acme"`, [0, 2]],
  [`headers.retries >= 2 && headers.retries % 3 == 0`, [0]],
  [`headers.nested.level == "deep"`, [3]],
  [`!has(headers.tenant) || headers.tenant.upperAscii() == "GLOBEX"`, [1, 3, 4]],
];

Deno.test("--filter: each variable selects the right messages; the others stay in the queue, in order", async () => {
  for (const [expr, want] of CASES) {
    await withFixture(async ({ ex, q }, client) => {
      const r = await consumeFixture(ex, q, "--filter", expr, "--idle-timeout", "0.5");
      assertEquals(r.code, 0, `${expr}: ${r.stderr}`);
      assertEquals(r.stdout, want.map((i) => `${ALL[i]}\n`).join(""), expr);
      assertEquals(await bodies(client, q), ALL.filter((_, i) => !want.includes(i)), `${expr}: left behind`);
    });
  }
});

Deno.test("--filter: redelivered, evaluation errors counted with -v, and --ack-unmatched", async () => {
  await withFixture(async ({ ex, q }, client) => {
    assertEquals((await run(["peek", "-q", q, "-n", "2"])).code, 0); // the first two come back redelivered
    const r = await consumeFixture(ex, q, "--filter", "redelivered", "-n", "2");
    assertEquals([r.code, r.stdout], [0, `${ALL[0]}\n${ALL[1]}\n`], r.stderr);
    const v = await consumeFixture(ex, q, "--filter", "json.amount > 500", "--idle-timeout", "0.5", "-v");
    assertEquals([v.code, v.stdout], [0, `${ALL[3]}\n`], v.stderr);
    assertMatch(v.stderr, /--filter: 2 message\(s\) did not match \(held, then left in the queue\)/);
    assertMatch(v.stderr, /could not be evaluated on 2 of them .*the first: the body is not JSON/);
    const a = await consumeFixture(
      ex,
      q,
      "--filter",
      `body == "x"`,
      "--ack-unmatched",
      "--idle-timeout",
      "0.5",
    );
    assertEquals([a.code, a.stdout], [0, ""], a.stderr);
    assertEquals(await queueDepth(client, q), 0, "--ack-unmatched removed them");
  });
});

Deno.test("--filter on a tap shows only matching messages and leaves nothing behind", async () => {
  const ex = unique("kmq-ftap");
  await withCleanup({ exchanges: [ex] }, async (client) => {
    const tap = await startConsumer(["-q", "", "-e", ex, "-t", "fanout", "--filter", `body.endsWith("!")`]);
    let r;
    try {
      for (const body of ["one", "two!", "three", "four!"]) await publishRaw(client, ex, "", body);
      await tap.waitForLines(2);
    } finally {
      tap.kill("SIGINT");
      r = await tap.result();
    }
    assertEquals([r.code, r.stdout], [130, "two!\nfour!\n"], r.stderr);
    assertMatch(r.stderr, /--filter: 2 message\(s\) did not match \(acked unseen\)/);
  });
});

Deno.test("--filter: a window full of held messages does not stall (1,000 before the one that matches)", async () => {
  const q = unique("kmq-fwin");
  await withCleanup({ queues: [q] }, async (client) => {
    const lines = Array.from({ length: 1000 }, (_, i) => `skip ${i}\n`).join("") + "match\n";
    assertEquals((await run(["produce", "-e", "", "-r", q, "-q", q, "--lines"], { stdin: lines })).code, 0);
    const r = await run(["consume", "-e", "", "-q", q, "-p", "10", "--filter", `body == "match"`, "-n", "1"]);
    assertEquals([r.code, r.stdout], [0, "match\n"], r.stderr);
    const left = await bodies(client, q);
    assertEquals(left.length, 1000);
    assertEquals(left, Array.from({ length: 1000 }, (_, i) => `skip ${i}`), "order unchanged");
  });
});

Deno.test("--filter: malformed expressions are exit 2 pointing at the problem, and nothing is taken", async () => {
  await withFixture(async ({ ex, q }, client) => {
    const consume = (...extra: string[]) => consumeFixture(ex, q, "--idle-timeout", "0.5", ...extra);
    assertFailure(
      await consume("--filter", "json.amount >"),
      2,
      /^kmq: --filter syntax error at column 13 \(after 'json\.amount '\): found > but expecting end of input/,
    );
    assertFailure(
      await consume("--filter", `tenant == "acme"`),
      2,
      /unknown name 'tenant': the variables are body, json, routing_key, exchange, properties, headers, redelivered, death/,
    );
    assertFailure(await consume("--filter", "json.amount * 2"), 2, /is the result of \*, not a condition/);
    assertFailure(await consume("--filter", `"acme"`), 2, /is a constant, not a condition/);
    assertFailure(await consume("--filter", "[true]"), 2, /is a list, not a condition/);
    // what the types tell before any message: strings, maps, a property
    assertFailure(await consume("--filter", "body"), 2, /is body, a string, not a condition/);
    assertFailure(await consume("--filter", "headers"), 2, /is headers, a map, not a condition/);
    assertFailure(
      await consume("--filter", "properties.type"),
      2,
      /is a property, a string or a number, not a/,
    );
    // only a message can tell: the first one stops the run and stays in the queue
    assertFailure(await consume("--filter", "json.id"), 2, /gave a string \('a'\), not true or false/);
    assertFailure(await consume("--ack-unmatched"), 2, /--ack-unmatched needs --filter/);
    assertFailure(
      await consume("--filter", "true", "--no-ack"),
      2,
      /would lose the messages that do not match/,
    );
    assertEquals(await bodies(client, q), ALL, "every message is still there, in order");
  });
});

Deno.test("--filter: hostile bodies neither crash it nor reach the terminal", async () => {
  const q = unique("kmq-fhostile");
  await withCleanup({ queues: [q] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(q, { durable: true });
    await ch.close();
    const deep = "[".repeat(200_000) + "]".repeat(200_000);
    await publishRaw(client, "", q, deep);
    await publishRaw(client, "", q, `{"name": "\u001b]0;pwned\u0007\u001b[2J", "n": NaN}`); // raw controls: not JSON
    const red = `{"name": "\\u001b[31mred", "amount": 1e400}`; // an escape in a JSON string
    await publishRaw(client, "", q, red);
    // only the third is JSON with a name: its value is shown escaped, and the run stops there
    const e = await run(["consume", "-e", "", "-q", q, "--filter", "json.name", "--idle-timeout", "0.5"]);
    assertFailure(e, 2, /gave a string \('\\x1b\[31mred'\), not true or false/);
    assertEquals(await queueDepth(client, q), 3);
    const r = await run([
      "consume",
      "-e",
      "",
      "-q",
      q,
      "--filter",
      "json.amount > 1.0",
      "-o",
      "json",
      "-n",
      "1",
    ]);
    assertEquals([r.code, JSON.parse(r.stdout).body], [0, red], "1e400 is Infinity, > 1");
    assertEquals(await queueDepth(client, q), 2);
  });
});

Deno.test("move --filter: only matching messages move; the rest stay in the source, in order", async () => {
  const [from, to] = [unique("kmq-mf"), unique("kmq-mt")];
  await withCleanup({ queues: [from, to] }, async (client) => {
    const lines = Array.from({ length: 2000 }, (_, i) => `${i}\n`).join("");
    assertEquals(
      (await run(["produce", "-e", "", "-r", from, "-q", from, "--lines"], { stdin: lines })).code,
      0,
    );
    const r = await run(["move", "--from", from, "--to", to, "--filter", "int(body) % 4 == 0"]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /moved 500 message\(s\) from .*; 1500 did not match --filter and stay in/);
    assertEquals(await bodies(client, to), Array.from({ length: 500 }, (_, i) => `${i * 4}`));
    assertEquals(
      await bodies(client, from),
      Array.from({ length: 2000 }, (_, i) => `${i}`).filter((b) => Number(b) % 4 !== 0),
    );
    const bad = await run(["move", "--from", from, "--to", to, "--filter", "routing_key +"]);
    assertFailure(bad, 2, /--filter syntax error at column/);
  });
});

Deno.test("--filter's cost is bounded: nested comprehensions are refused before anything is taken (exit 2)", async () => {
  const r = await run([
    "consume",
    "-e",
    "",
    "-q",
    "kmq-never-declared",
    "--no-declare",
    "--filter",
    'body.split("").all(x, body.split("").all(y, x != "z"))',
  ]);
  assertFailure(r, 2, /--filter nests a comprehension .* inside another: its cost grows with the square/);
});

Deno.test("--filter's cost is bounded: one evaluation over 1 s fails that message with a usage error", async () => {
  const { MessageFilter } = await import("../lib/messages/filter.ts");
  const { UsageError } = await import("../lib/term/errors.ts");
  const filter = new MessageFilter('body.split("").all(x, body.replace(x, x) == body)');
  const slow = {
    body: new TextEncoder().encode("a".repeat(4000)),
    properties: {},
    routingKey: "",
    exchange: "",
  };
  let thrown: unknown;
  try {
    filter.matches(slow as unknown as import("@cloudamqp/amqp-client").AMQPMessage);
  } catch (err) {
    thrown = err;
  }
  assert(thrown instanceof UsageError, `a usage error, not ${thrown}`);
  assertMatch(String((thrown as Error).message), /--filter took \d+\.\d s on one message \(more than 1 s/);
});
