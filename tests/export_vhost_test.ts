/**
 * A whole vhost carried from one private node to another: direct, topic, headers, fanout and
 * internal exchanges, exchange-to-exchange bindings, an alternate exchange, classic queues with
 * TTL / dead-lettering / max-length / priorities, a quorum queue, a stream, a policy, and 100,000
 * messages (some with every field type, one written by pika). Every queue must arrive equal
 * message by message — the content-header bytes and bodies as a raw client reads them off the
 * wire — the definitions equal, and the source left as it was; then the same file goes into a
 * second vhost with its classic queues turned into quorum queues.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { run } from "./helpers.ts";
import { noPika, pika } from "./pika/pika.ts";
import { type PrivateBroker, withManagementNode } from "./private_broker.ts";

const HOSTILE = {
  i8: { $int8: -128 },
  u32: { $uint32: 4294967295 },
  above53: { $int64: "9007199254740993" },
  i64min: { $int64: "-9223372036854775808" },
  f32: { $float: 1.5 },
  dbl: { $double: 1.7976931348623157e+308 },
  dec: { $decimal: "-2147483.648" },
  tsmax: { $timestamp: "18446744073709551615" },
  bytes: { $bytes: btoa(String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i))) },
  nested: { a: [1, { b: [{ $int8: -1 }, { c: null }] }, [], {}] },
  __proto__: { __proto__: [{ __proto__: "deep" }] },
  constructor: "c",
  "": "empty key",
};

/**
 * n records numbered from 1 ("<queue> <i>"); every 1000th with every field type and edge
 * timestamps — not for a stream, which RabbitMQ 3.10 fails to store with them (INTERNAL_ERROR).
 */
function records(queue: string, n: number, priorities = false, hostile = true): string {
  const out: string[] = [];
  for (let i = 1; i <= n; i++) {
    const properties: Record<string, unknown> = { delivery_mode: 2, message_id: `${queue}-${i}` };
    if (priorities) properties.priority = i % 6;
    if (hostile && i % 1000 === 1) {
      Object.assign(properties, {
        headers: HOSTILE,
        timestamp: "18446744073709551615",
        type: "t\u0000\u009b",
      });
    }
    // built as text: JSON.stringify would drop the __proto__ key of an object literal
    const headers = properties.headers
      ? `,"headers":${
        JSON.stringify(HOSTILE).replace("{", '{"__proto__":{"__proto__":[{"__proto__":"deep"}]},')
      }`
      : "";
    delete properties.headers;
    const props = JSON.stringify(properties).slice(0, -1) + headers + "}";
    out.push(`{"properties":${props},"body":"${queue} ${i}"}`);
  }
  return out.join("\n") + "\n";
}

const QUEUES: [string, Record<string, unknown>, number][] = [
  ["q.plain", {}, 45_000],
  ["q.ttl", {
    "x-message-ttl": 3_600_000,
    "x-dead-letter-exchange": "ex.direct",
    "x-dead-letter-routing-key": "dead",
  }, 10_000],
  ["q.max", { "x-max-length": 100_000, "x-overflow": "reject-publish" }, 10_000],
  ["q.prio", { "x-max-priority": 5 }, 5_000],
  ["q.alt", {}, 0],
  ["q.dead", {}, 0],
  ["q.quorum", { "x-queue-type": "quorum" }, 15_000],
  ["q.stream", { "x-queue-type": "stream" }, 14_999],
];

async function api(node: PrivateBroker, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`http://127.0.0.1:${node.managementPort}/api/${path}`, {
    method,
    headers: { authorization: `Basic ${btoa("guest:guest")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function buildSource(node: PrivateBroker): Promise<void> {
  const client = new AMQPClient(node.url);
  await client.connect();
  const ch = await client.channel();
  for (
    const [name, type] of [["ex.direct", "direct"], ["ex.topic", "topic"], ["ex.headers", "headers"], [
      "ex.fanout",
      "fanout",
    ], ["ex.alt", "fanout"]]
  ) {
    await ch.exchangeDeclare(name!, type!, { durable: true });
  }
  await ch.exchangeDeclare("ex.main", "direct", { durable: true }, { "alternate-exchange": "ex.alt" });
  await ch.exchangeDeclare("ex.internal", "topic", { durable: true, internal: true });
  await ch.exchangeBind("ex.fanout", "ex.topic", "a.#");
  await ch.exchangeBind("ex.internal", "ex.direct", "k");
  for (const [name, args] of QUEUES) await ch.queueDeclare(name, { durable: true }, args);
  await ch.queueBind("q.plain", "ex.direct", "plain");
  await ch.queueBind("q.ttl", "ex.topic", "t.*");
  await ch.queueBind("q.quorum", "ex.headers", "", { "x-match": "all", kind: "q", n: 2 });
  await ch.queueBind("q.stream", "ex.fanout", "");
  await ch.queueBind("q.alt", "ex.alt", "");
  await ch.queueBind("q.dead", "ex.direct", "dead");
  await ch.queueBind("q.max", "ex.main", "max");
  await client.close();
  await api(node, "PUT", "policies/%2F/p-max", {
    pattern: "^q\\.plain$",
    definition: { "max-length": 500_000 },
    "apply-to": "queues",
    priority: 1,
  });
}

async function fill(url: string): Promise<void> {
  for (const [name, , n] of QUEUES) {
    if (n === 0) continue;
    const r = await run(["produce", "--jsonl", "-e", "", "-r", name, "--no-declare"], {
      stdin: records(name, n, name === "q.prio", name !== "q.stream"),
      env: { KMQ_URL: url },
    });
    assertEquals(r.code, 0, `${name}: ${r.stderr}`);
  }
}

/**
 * Every message of a queue as a raw client sees it: the content header's bytes (properties,
 * headers) and the body, in delivery order; taken off the queue (a stream is read, not changed).
 */
async function wireDump(url: string, queue: string, stream: boolean): Promise<string[]> {
  const client = new AMQPClient(url);
  await client.connect();
  const headers: string[] = [];
  const seen = client as unknown as { parseFrames(v: DataView): void };
  const parse = seen.parseFrames.bind(client);
  seen.parseFrames = (view: DataView) => {
    if (view.getUint8(0) === 2) {
      const bytes = new Uint8Array(view.buffer, view.byteOffset + 19, view.byteLength - 20);
      headers.push(Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""));
    }
    parse(view);
  };
  const ch = await client.channel();
  const { messageCount } = await ch.queueDeclare(queue, { passive: true });
  const bodies: string[] = [];
  await ch.basicQos(1000);
  let quiet = 0;
  await ch.basicConsume(queue, {
    noAck: stream ? false : true,
    args: stream ? { "x-stream-offset": "first" } : {},
  }, (m) => {
    bodies.push(m.bodyToString() ?? "");
    quiet = 0;
    if (stream) m.ack().catch(() => {});
  });
  while ((stream || bodies.length < messageCount) && quiet < 40) {
    await new Promise((r) => setTimeout(r, 50));
    quiet++;
  }
  await client.close();
  return bodies.map((b, i) => `${headers[i]} ${b}`);
}

/** The definitions as sets of comparable lines (the vhost and the broker's version left out). */
async function definitions(node: PrivateBroker, vhost = "%2F"): Promise<Record<string, string[]>> {
  const d = await api(node, "GET", `definitions/${vhost}`) as Record<string, Record<string, unknown>[]>;
  const norm = (list: Record<string, unknown>[] = []) =>
    list.map((e) => {
      const { vhost: _v, ...rest } = e;
      return JSON.stringify(rest, Object.keys(rest).sort());
    }).sort();
  return {
    exchanges: norm(d.exchanges),
    queues: norm(d.queues),
    bindings: norm(d.bindings),
    policies: norm(d.policies),
  };
}

Deno.test("a whole vhost (topology, policy, 100,000 messages with every field type) is exported and imported equal, the source unchanged; then migrated to quorum queues", async () => {
  await withManagementNode(async (source, sourceEnv) => {
    await withManagementNode(async (target, targetEnv) => {
      await buildSource(source);
      await fill(source.url);
      const pikaUrl = (node: PrivateBroker) => node.url.replace(/\/$/, "/%2F");
      if (!noPika) await pika("publish", pikaUrl(source), "q.pika");
      const dir = await Deno.makeTempDir({ prefix: "kmq-vhost-" });
      const file = `${dir}/vhost.kmq`;
      const exported = await run(["export", file], { env: sourceEnv, timeoutMs: 300_000 });
      assertEquals(exported.code, 0, exported.stderr);
      assertMatch(
        exported.stderr,
        /exported to .*: 7 exchange\(s\), \d+ queue\(s\), 9 binding\(s\), 1 policy/,
      );
      assertMatch(exported.stderr, /queue 'q\.quorum' \(quorum\): 15000 message\(s\)/);
      assertMatch(exported.stderr, /queue 'q\.stream' \(stream\): 14999 message\(s\)/);

      const some = `${dir}/some.kmq`;
      const chosen = await run(["export", "--queue-regex", "^q\\.(plain|ttl)$", "--no-messages", some], {
        env: sourceEnv,
      });
      assertEquals(chosen.code, 0, chosen.stderr);
      const someDefs = JSON.parse((await Deno.readTextFile(some)).split("\n")[2]!);
      assertEquals(someDefs.queues.map((q: { name: string }) => q.name).sort(), ["q.plain", "q.ttl"]);

      const imported = await run(["import", file], { env: targetEnv, timeoutMs: 300_000 });
      assertEquals(imported.code, 0, imported.stderr);
      assertMatch(imported.stderr, new RegExp(`imported ${noPika ? 99_999 : 100_000} message\\(s\\) into`));
      assertEquals(await definitions(target), await definitions(source), "the definitions");

      // the same file into a second vhost, classic queues becoming quorum queues
      await api(target, "PUT", "vhosts/migrated", {});
      await api(target, "PUT", "permissions/migrated/guest", { configure: ".*", write: ".*", read: ".*" });
      const intoMigrated = {
        env: { ...targetEnv, KMQ_URL: target.url.replace(/\/$/, "/migrated") },
        timeoutMs: 300_000,
      };
      const migrate = ["import", "--queue-type", "quorum", "--progress", `${file}.migrated`, file];
      // a policy of the same name but another definition is not replaced silently
      await api(target, "PUT", "policies/migrated/p-max", {
        pattern: "^x$",
        definition: { "max-length": 1 },
      });
      const refused = await run(migrate, intoMigrated);
      assertEquals(refused.code, 6, refused.stderr);
      assertMatch(refused.stderr, /policy 'p-max' exists on the target with another pattern or definition/);
      assertEquals(await api(target, "GET", "queues/migrated"), [], "nothing declared after the refusal");
      await api(target, "DELETE", "policies/migrated/p-max");
      const migrated = await run(migrate, intoMigrated);
      assertEquals(migrated.code, 0, migrated.stderr);
      assertMatch(migrated.stderr, /queue 'q\.prio' becomes a quorum queue without x-max-priority/);
      const queues = await api(target, "GET", "queues/migrated?columns=name,type") as {
        name: string;
        type: string;
      }[];
      for (const q of queues) assertEquals(q.type, q.name === "q.stream" ? "stream" : "quorum", q.name);

      if (!noPika) {
        assertEquals(
          await pika("read", pikaUrl(target), "q.pika"),
          await pika("read", pikaUrl(source), "q.pika"),
        );
      }
      for (const [name, , n] of QUEUES) {
        const stream = name === "q.stream";
        const from = await wireDump(source.url, name, stream);
        const to = await wireDump(target.url, name, stream);
        assertEquals(from.length, n, `${name}: the source kept its messages`);
        assertEquals(to.length, n, `${name}: all arrived`);
        for (let i = 0; i < n; i++) {
          if (from[i] !== to[i]) assertEquals(to[i], from[i], `${name}: message ${i + 1}`);
        }
        const bodies = from.map((l) => l.slice(l.indexOf(" ") + 1));
        const inOrder = name === "q.prio" ? [...bodies].sort() : bodies;
        const expected = Array.from({ length: n }, (_, i) => `${name} ${i + 1}`);
        assertEquals(
          name === "q.prio" ? inOrder : bodies,
          name === "q.prio" ? [...expected].sort() : expected,
          `${name}: order`,
        );
        const moved = await wireDump(target.url.replace(/\/$/, "/migrated"), name, stream);
        assertEquals(moved.length, n, `${name}: migrated`);
      }
    });
  });
});
