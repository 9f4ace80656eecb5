/**
 * kmq route, with the broker as the oracle: on a topology of direct, fanout, topic (`*`, `#`,
 * empty words), headers (the four x-match modes, typed values), an exchange-to-exchange binding and
 * an alternate exchange, every generated message is published for real and `kmq route` must name
 * exactly the queues it reached.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, run, unique, withCleanup } from "./helpers.ts";
import { withManagementNode } from "./private_broker.ts";

interface Case {
  exchange: string;
  key: string;
  /** Header values as the test publishes them; `-H` arguments for kmq alike. */
  headers: Record<string, string | number | boolean>;
}

const TOPIC_PATTERNS = [
  "*",
  "#",
  "a.*",
  "a.#",
  "*.b",
  "#.b",
  "a.*.c",
  "",
  "*.*",
  "a.#.c",
  "#.a.#",
  "a..b",
  "*.#.*",
];

/** Keys of 0 to 3 words over a, b, c and the empty word, and of 4 words over a, b, c. */
function topicKeys(): string[] {
  const grow = (keys: string[][], words: string[]) => keys.flatMap((k) => words.map((w) => [...k, w]));
  const four = ["a", "b", "c", ""];
  const one = grow([[]], four);
  const two = grow(one, four);
  const three = grow(two, four);
  const fourWords = grow(grow(grow(grow([[]], ["a", "b", "c"]), ["a", "b", "c"]), ["a", "b", "c"]), [
    "a",
    "b",
    "c",
  ]);
  // [""] and [] are both the empty key: once is enough
  return [...new Set([[], ...one, ...two, ...three, ...fourWords].map((k) => k.join(".")))];
}

const HEADER_BINDINGS: Record<string, string | number | boolean>[] = [
  { "x-match": "all", k1: "v1", k2: 2 },
  { "x-match": "any", k1: "v1", k2: 2 },
  { "x-match": "all", k2: "2" }, // a string: an integer 2 does not match it
  { "x-match": "all-with-x", k1: "v1", "x-tag": "t" },
  { "x-match": "any-with-x", "x-tag": "t" },
  { "x-match": "any", "x-tag": "t" }, // plain any skips x- arguments: matches nothing
  { "x-match": "all", flag: true },
  { "x-match": "all" }, // nothing to test: takes everything
];

/** Every combination of k1 (absent, "v1", "v2"), k2 (absent, 2, "2"), x-tag (absent, "t"), flag (absent, true, false). */
const HEADER_SETS: Record<string, string | number | boolean>[] = (() => {
  const sets: Record<string, string | number | boolean>[] = [];
  for (const k1 of [undefined, "v1", "v2"]) {
    for (const k2 of [undefined, 2, "2"]) {
      for (const tag of [undefined, "t"]) {
        for (const flag of [undefined, true, false]) {
          const h: Record<string, string | number | boolean> = {};
          if (k1 !== undefined) h.k1 = k1;
          if (k2 !== undefined) h.k2 = k2;
          if (tag !== undefined) h["x-tag"] = tag;
          if (flag !== undefined) h.flag = flag;
          sets.push(h);
        }
      }
    }
  }
  return sets;
})();

async function topology(client: AMQPClient, p: string): Promise<{ queues: string[]; exchanges: string[] }> {
  const ch = await client.channel();
  const queues: string[] = [];
  const queue = async (name: string) => {
    await ch.queueDeclare(name, { durable: true });
    queues.push(name);
    return name;
  };
  const x = { t: `${p}.t`, d: `${p}.d`, f: `${p}.f`, h: `${p}.h`, ae: `${p}.ae`, aef: `${p}.aef` };
  await ch.exchangeDeclare(x.t, "topic", { durable: true });
  await ch.exchangeDeclare(x.d, "direct", { durable: true });
  await ch.exchangeDeclare(x.f, "fanout", { durable: true });
  await ch.exchangeDeclare(x.h, "headers", { durable: true });
  await ch.exchangeDeclare(x.aef, "fanout", { durable: true });
  await ch.exchangeDeclare(x.ae, "direct", { durable: true }, { "alternate-exchange": x.aef });
  for (const [i, pattern] of TOPIC_PATTERNS.entries()) {
    await ch.queueBind(await queue(`${p}.t${i}`), x.t, pattern);
  }
  for (const key of ["a", "b", ""]) await ch.queueBind(await queue(`${p}.d-${key}`), x.d, key);
  await ch.exchangeBind(x.f, x.t, "a.#"); // topic → fanout → queue
  await ch.queueBind(await queue(`${p}.f`), x.f, "");
  for (const [i, args] of HEADER_BINDINGS.entries()) {
    await ch.queueBind(await queue(`${p}.h${i}`), x.h, "", args);
  }
  await ch.queueBind(await queue(`${p}.ae-x`), x.ae, "x");
  await ch.queueBind(await queue(`${p}.aef`), x.aef, "");
  await ch.close();
  return { queues, exchanges: Object.values(x) };
}

function cases(p: string): Case[] {
  const all: Case[] = topicKeys().map((key) => ({ exchange: `${p}.t`, key, headers: {} }));
  for (const key of ["a", "b", "", "c", "a.b"]) all.push({ exchange: `${p}.d`, key, headers: {} });
  for (const headers of HEADER_SETS) all.push({ exchange: `${p}.h`, key: "", headers });
  for (const key of ["x", "y", ""]) all.push({ exchange: `${p}.ae`, key, headers: {} });
  for (const key of [`${p}.d-a`, "no-such-queue"]) all.push({ exchange: "", key, headers: {} });
  return all;
}

/** The broker's definitions into `file` (to stdout: the broker's own user could not write the file). */
async function exportDefinitions(file: string): Promise<void> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-q", "export_definitions", "-"],
    stdout: "piped",
  })
    .output();
  assert(out.success, "rabbitmqctl export_definitions -");
  await Deno.writeFile(file, out.stdout);
}

function headerArgs(h: Case["headers"]): string[] {
  return Object.entries(h).flatMap(([k, v]) => ["-H", typeof v === "string" ? `${k}=${v}` : `${k}:=${v}`]);
}

Deno.test("route: names exactly the queues a real publish reaches, for every generated message", async () => {
  const p = unique("kmq-route");
  const file = await Deno.makeTempFile({ suffix: ".json" });
  let names = { queues: [] as string[], exchanges: [] as string[] };
  try {
    await withCleanup({}, async (client) => {
      names = await topology(client, p);
      const all = cases(p);
      // the oracle: publish each case (its index as the body), then see which queues got which
      const ch = await client.channel();
      await ch.confirmSelect();
      for (const [i, c] of all.entries()) {
        await ch.basicPublish(c.exchange, c.key, String(i), { headers: c.headers, deliveryMode: 2 });
      }
      const reached: Set<string>[] = all.map(() => new Set());
      for (const q of names.queues) {
        for (let m = await ch.basicGet(q, { noAck: true }); m; m = await ch.basicGet(q, { noAck: true })) {
          reached[Number(m.bodyToString())]!.add(q);
        }
      }
      await exportDefinitions(file);
      const wrong: string[] = [];
      for (const [i, c] of all.entries()) {
        const args = [
          "route",
          "--definitions",
          file,
          "-e",
          c.exchange,
          "-r",
          c.key,
          ...headerArgs(c.headers),
        ];
        const r = await run([...args, "-o", "json"]);
        assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
        const said = JSON.parse(r.stdout).queues as string[];
        const real = [...reached[i]!].sort();
        if (JSON.stringify(said) !== JSON.stringify(real)) {
          wrong.push(
            `${args.slice(3).join(" ")}: kmq says ${JSON.stringify(said)}, the broker ${
              JSON.stringify(real)
            }`,
          );
        }
      }
      assertEquals(wrong, [], `${wrong.length} of ${all.length} cases differ`);
      assert(all.length > 200, `${all.length} cases`);
    });
  } finally {
    await Deno.remove(file).catch(() => {});
    await withCleanup({ queues: names.queues, exchanges: names.exchanges }, async () => {});
  }
});

Deno.test("route: the tree says why, a missing exchange is exit 6, dead letters follow the queue's DLX", async () => {
  const p = unique("kmq-route");
  const file = await Deno.makeTempFile({ suffix: ".json" });
  const [x, q, dlq, src] = [`${p}.events`, `${p}.orders`, `${p}.dlq`, `${p}.work`];
  try {
    await withCleanup({ queues: [q, dlq, src], exchanges: [x, `${p}.dlx`] }, async (client) => {
      const ch = await client.channel();
      await ch.exchangeDeclare(x, "topic", { durable: true });
      await ch.exchangeDeclare(`${p}.dlx`, "direct", { durable: true });
      await ch.queueDeclare(q, { durable: true });
      await ch.queueDeclare(dlq, { durable: true });
      await ch.queueDeclare(src, { durable: true }, {
        "x-dead-letter-exchange": `${p}.dlx`,
        "x-dead-letter-routing-key": "dead",
      });
      await ch.queueBind(q, x, "order.*");
      await ch.queueBind(dlq, `${p}.dlx`, "dead");
      await exportDefinitions(file);
      const tree = await run(["route", "--definitions", file, "-e", x, "-r", "order.created"]);
      assertEquals(tree.code, 0, tree.stderr);
      assertMatch(
        tree.stdout,
        new RegExp(`'order\\.\\*' → queue '${q}': yes, pattern 'order\\.\\*' matches 'order\\.created'`),
      );
      assertMatch(tree.stdout, new RegExp(`reaches 1 queue\\(s\\): '${q}'`));
      const none = await run(["route", "--definitions", file, "-e", x, "-r", "user.created"]);
      assertMatch(
        none.stdout,
        /no, pattern 'order\.\*' does not match 'user\.created'\nunroutable: reaches no queue/,
      );
      assertFailure(
        await run(["route", "--definitions", file, "-e", `${p}.nope`]),
        6,
        /exchange '.*' does not exist/,
      );
      const dead = await run(["route", "--definitions", file, "--dead-letters", src, "-o", "json"]);
      assertEquals(dead.code, 0, dead.stderr);
      assertEquals(JSON.parse(dead.stdout).queues, [dlq]);
      const noDlx = await run(["route", "--definitions", file, "--dead-letters", q]);
      assertFailure(noDlx, 6, /has no dead-letter exchange .*: its dead letters are dropped/);
      const notJson = await run(["route", "--definitions", "/etc/hostname", "-e", x]);
      assertFailure(notJson, 3, /is not JSON: give a file from 'rabbitmqctl export_definitions'/);
      // a mistaken path is refused before it is read: a device, or a file far larger than any definitions
      assertFailure(await run(["route", "--definitions", "/dev/zero", "-e", x]), 3, /is not a file/);
      const huge = await Deno.makeTempFile({ suffix: ".json" });
      try {
        await Deno.truncate(huge, 300 * 1024 * 1024); // sparse: no disk used
        assertFailure(
          await run(["route", "--definitions", huge, "-e", x]),
          3,
          /314572800 bytes, more than a definitions file/,
        );
      } finally {
        await Deno.remove(huge);
      }
    });
  } finally {
    await Deno.remove(file).catch(() => {});
  }
});

Deno.test("route: reads the topology from the management API when no --definitions is given", async () => {
  await withManagementNode(async (node, env) => {
    const kmq = (...args: string[]) => run(args, { env });
    assertEquals(
      (await kmq("declare", "-e", "events", "-t", "topic", "-q", "orders", "-r", "order.*")).code,
      0,
    );
    // an alternate exchange set by a policy, which only the definitions (not the arguments) show
    assertEquals((await kmq("declare", "-e", "lost", "-t", "fanout", "-q", "lost-and-found")).code, 0);
    const policy = await new Deno.Command("rabbitmqctl", {
      args: [
        "-n",
        node.node,
        "set_policy",
        "ae",
        "^events$",
        '{"alternate-exchange": "lost"}',
        "--apply-to",
        "exchanges",
      ],
      stdout: "null",
    }).output();
    assert(policy.success, "set_policy");
    const hit = await kmq("route", "-e", "events", "-r", "order.paid", "-o", "json");
    assertEquals([hit.code, JSON.parse(hit.stdout).queues], [0, ["orders"]], hit.stderr);
    const miss = await kmq("route", "-e", "events", "-r", "user.created");
    assertEquals(miss.code, 0, miss.stderr);
    assertMatch(miss.stdout, /nothing took it: alternate exchange 'lost' \(policy 'ae'\)/);
    assertMatch(miss.stdout, /reaches 1 queue\(s\): 'lost-and-found'/);
  });
});
