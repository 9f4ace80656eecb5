/**
 * kmq redrive on real dead-lettering: rejected, expired, maxlen and over a quorum delivery limit,
 * from four origin queues into one DLQ; the origin's sibling on the same topic binding gets no copy;
 * --dry-run changes nothing; the loop guard; --filter on `death`; kmq killed -9 mid-redrive.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { drain, queueDepth, run, Running, sleep, unique, withCleanup } from "./helpers.ts";

/** Rejects (without requeue) every message in `queue`: each is dead-lettered as "rejected". */
async function rejectAll(client: AMQPClient, queue: string): Promise<void> {
  const ch = await client.channel();
  for (
    let m = await ch.basicGet(queue, { noAck: false });
    m;
    m = await ch.basicGet(queue, { noAck: false })
  ) await m.reject(false);
  await ch.close();
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(100)) {
    if (await check()) return;
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The bodies in a queue, in order, taken and put back (a peek). */
async function bodiesIn(queue: string): Promise<string[]> {
  const r = await run(["peek", "-q", queue, "-n", "1000", "--accept-delivery-count"]);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
}

Deno.test("redrive: each dead letter goes back to the queue it died in, for every reason; --dry-run changes nothing", async () => {
  const p = unique("kmq-rd");
  const [dlq, x, a, sibling, b, c, d] = [
    `${p}.dlq`,
    `${p}.events`,
    `${p}.a`,
    `${p}.sibling`,
    `${p}.b`,
    `${p}.c`,
    `${p}.d`,
  ];
  await withCleanup({ queues: [dlq, a, sibling, b, c, d], exchanges: [x] }, async (client) => {
    const ch = await client.channel();
    const dl = { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq };
    await ch.queueDeclare(dlq, { durable: true });
    await ch.exchangeDeclare(x, "topic", { durable: true });
    await ch.queueDeclare(a, { durable: true }, dl);
    await ch.queueDeclare(sibling, { durable: true });
    await ch.queueBind(a, x, "order.*");
    await ch.queueBind(sibling, x, "order.*");
    await ch.queueDeclare(b, { durable: true }, { ...dl, "x-message-ttl": 1 });
    await ch.queueDeclare(c, { durable: true }, { ...dl, "x-max-length": 1 });
    await ch.queueDeclare(d, { durable: true }, { ...dl, "x-queue-type": "quorum", "x-delivery-limit": 1 });
    // a: rejected (its sibling has the same two); b: expired; c: maxlen; d: over its delivery limit
    for (const body of ["a1", "a2"]) await ch.basicPublish(x, "order.new", body, { deliveryMode: 2 });
    await rejectAll(client, a);
    await drain(client, sibling);
    for (const body of ["b1", "b2"]) await ch.basicPublish("", b, body, { deliveryMode: 2 });
    for (const body of ["c1", "c2", "c3"]) await ch.basicPublish("", c, body, { deliveryMode: 2 });
    await ch.basicPublish("", d, "d1", { deliveryMode: 2 });
    await until("d1 over its delivery limit", async () => {
      const m = await ch.basicGet(d, { noAck: false });
      if (m) await m.nack(true);
      return (await queueDepth(client, d)) === 0;
    });
    await ch.basicPublish("", dlq, "never died", { deliveryMode: 2 });
    await until("8 dead letters", async () => (await queueDepth(client, dlq)) === 8);
    await ch.close();

    const before = await bodiesIn(dlq);
    const dry = await run(["redrive", "--from", dlq, "--dry-run"]);
    assertEquals(dry.code, 0, dry.stderr);
    assertMatch(dry.stdout, new RegExp(`^7 message\\(s\\) would be redriven from queue '${dlq}':`));
    for (
      const line of [
        `queue '${a}', rejected: 2`,
        `queue '${b}', expired: 2`,
        `queue '${c}', maxlen: 2`,
        `queue '${d}', delivery_limit: 1`,
        "1: no x-death header",
      ]
    ) assert(dry.stdout.includes(line), `${line} in ${dry.stdout}`);
    assertEquals(await bodiesIn(dlq), before, "a dry run leaves order and count as they were");

    const json = await run(["redrive", "--from", dlq, "--dry-run", "-o", "json", "--origin", a]);
    const report = JSON.parse(json.stdout);
    assertEquals(report.redriven.map((g: { origin: string; count: number }) => [g.origin, g.count]), [[
      a,
      2,
    ]]);

    const r = await run(["redrive", "--from", dlq, "--reason", "rejected", "--reason", "delivery_limit"]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /^3 message\(s\) redriven/);
    // back in the queue they died in, and only there: the sibling on the same binding gets nothing
    assertEquals((await drain(client, a)).map((m) => m.bodyToString()), ["a1", "a2"]);
    assertEquals(await queueDepth(client, sibling), 0);
    const back = await drain(client, d);
    assertEquals(back.map((m) => [m.bodyToString(), m.properties.headers?.["x-kmq-redrives"]]), [["d1", 1]]);
    assertEquals((await bodiesIn(dlq)).sort(), ["b1", "b2", "c1", "c2", "never died"]);
  });
});

Deno.test("redrive: a message that dies again is not redriven again in that run; --max-redrives leaves it", async () => {
  const p = unique("kmq-rd");
  const [dlq, ttl] = [`${p}.dlq`, `${p}.ttl`];
  await withCleanup({ queues: [dlq, ttl] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(dlq, { durable: true });
    // everything put into this queue dies at once: a redrive would loop for ever without a guard
    await ch.queueDeclare(ttl, { durable: true }, {
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": dlq,
      "x-message-ttl": 0,
    });
    for (const body of ["t1", "t2", "t3"]) await ch.basicPublish("", ttl, body, { deliveryMode: 2 });
    await until("3 dead letters", async () => (await queueDepth(client, dlq)) === 3);
    const first = await run(["redrive", "--from", dlq], { timeoutMs: 30_000 });
    assertEquals(first.code, 0, first.stderr);
    assertMatch(first.stdout, /^3 message\(s\) redriven/);
    await until("3 dead again", async () => (await queueDepth(client, dlq)) === 3);
    const once = await run(["redrive", "--from", dlq, "--max-redrives", "1", "--dry-run"]);
    assertMatch(once.stdout, /3: redriven 1 time\(s\) already \(--max-redrives\)/);
    const deaths = await drain(client, dlq);
    assertEquals(deaths.map((m) => m.properties.headers?.["x-kmq-redrives"]), [1, 1, 1]);
    await ch.close();
  });
});

Deno.test("redrive: --filter sees death; kmq killed -9 mid-redrive of 20,000 loses nothing", async () => {
  const p = unique("kmq-rd");
  const [dlq, origin] = [`${p}.dlq`, `${p}.origin`];
  const N = 20_000;
  await withCleanup({ queues: [dlq, origin] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(dlq, { durable: true });
    await ch.queueDeclare(origin, { durable: true }, {
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": dlq,
    });
    const lines = Array.from({ length: N }, (_, i) => `${i}`).join("\n") + "\n";
    assertEquals((await run(["produce", "-e", "", "-r", origin, "--lines"], { stdin: lines })).code, 0);
    await ch.prefetch(1000);
    await ch.basicConsume(origin, { noAck: false }, (m) => void m.reject(false));
    await until("20,000 dead letters", async () => (await queueDepth(client, dlq)) === N);
    await ch.close();
    const none = await run(["redrive", "--from", dlq, "--filter", 'death.reason == "expired"', "--dry-run"]);
    assertMatch(
      none.stdout,
      new RegExp(`^0 message\\(s\\) would be redriven[\\s\\S]*${N}: --filter did not match`),
    );
    const redrive = new Running(["redrive", "--from", dlq]);
    await until("a quarter redriven", async () => (await queueDepth(client, origin)) >= N / 4);
    redrive.kill("SIGKILL");
    assertEquals((await redrive.result()).code, 137);
    const all = [...await drain(client, origin), ...await drain(client, dlq)].map((m) => m.bodyToString());
    const distinct = new Set(all);
    assertEquals(distinct.size, N, `every message in one of the two queues (${all.length - N} duplicated)`);
  });
});

Deno.test("redrive from quorum DLQs: what stays goes to the tail as new messages, so four runs against a delivery limit of 2 drop nothing; a second death and a second redrive", async () => {
  const p = unique("kmq-rd");
  const [free, limited, origin, gone] = [`${p}.free`, `${p}.limited`, `${p}.origin`, `${p}.gone`];
  await withCleanup({ queues: [free, limited, origin, gone] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(free, { durable: true }, { "x-queue-type": "quorum" });
    await ch.queueDeclare(limited, { durable: true }, { "x-queue-type": "quorum", "x-delivery-limit": 2 });
    const dl = (dlq: string) => ({ "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq });
    // into each DLQ: one from `origin` (redriven), one from `gone` (deleted since: it stays)
    for (const dlq of [free, limited]) {
      for (const q of [origin, gone]) {
        await ch.queueDeclare(q, { durable: true }, dl(dlq));
        await ch.basicPublish("", q, `${q === origin ? "back" : "stays"} from ${dlq}`, { deliveryMode: 2 });
        await rejectAll(client, q);
        await ch.queueDelete(q);
      }
      await ch.basicPublish("", dlq, `never died in ${dlq}`, { deliveryMode: 2 });
      await until(`three messages in ${dlq}`, async () => (await queueDepth(client, dlq)) === 3);
    }
    await ch.queueDeclare(origin, { durable: true }, dl(limited));
    // a dry run puts everything back, each return counting: only when accepted
    const dry = await run(["redrive", "--from", limited, "--dry-run"]);
    assertEquals(dry.code, 2, dry.stderr);
    assertMatch(dry.stderr, /quorum queue with a delivery limit of 2 .*--accept-delivery-count/);
    // no management API on the shared broker, so `free` may have a policy's limit: no matter now
    const r = await run(["redrive", "--from", free]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /2 stay in '.*\.free' \(at its tail, as new messages: a return would count/);
    for (let i = 1; i <= 4; i++) {
      const again = await run(["redrive", "--from", limited, "-o", "json"]);
      assertEquals(again.code, 0, `run ${i}: ${again.stderr}`);
      const report = JSON.parse(again.stdout);
      assertEquals(report.left.reduce((n: number, l: { count: number }) => n + l.count, 0), 2, `run ${i}`);
      assertEquals(report.left_sent_to_tail, true);
      assertEquals(await queueDepth(client, limited), 2, `run ${i}: nothing dropped past the limit`);
    }
    const got = await drain(client, origin);
    assertEquals(got.map((m) => m.bodyToString()).sort(), [`back from ${free}`, `back from ${limited}`]);
    const kept = await run(["peek", "-q", limited, "-o", "json", "--accept-delivery-count"]);
    const records = kept.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(records.map((m) => m.body).sort(), [`never died in ${limited}`, `stays from ${limited}`]);
    // a second death in `origin` and a second redrive: back again, counted twice
    await ch.basicPublish("", origin, "twice", { deliveryMode: 2 });
    for (let death = 1; death <= 2; death++) {
      await rejectAll(client, origin);
      await until(`death ${death}`, async () => (await queueDepth(client, origin)) === 0);
      const redrive = await run(["redrive", "--from", limited, "--origin", origin]);
      assertEquals(redrive.code, 0, redrive.stderr);
      assertMatch(redrive.stdout, /^1 message\(s\) redriven/);
    }
    const twice = await run(["consume", "-q", origin, "-n", "1", "-o", "json"]);
    const rec = JSON.parse(twice.stdout);
    assertEquals([rec.body, rec.properties.headers["x-kmq-redrives"]], ["twice", 2]);
    assertEquals(rec.properties.headers["x-death"][0].count, { $int64: "2" }, "x-death counts both deaths");
    await ch.close();
  });
});

Deno.test("redrive --via-exchange: back through the exchange and key it was published with (copies included)", async () => {
  const p = unique("kmq-rd");
  const [dlq, x, a, sibling] = [`${p}.dlq`, `${p}.events`, `${p}.a`, `${p}.sibling`];
  await withCleanup({ queues: [dlq, a, sibling], exchanges: [x] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(dlq, { durable: true });
    await ch.exchangeDeclare(x, "topic", { durable: true });
    await ch.queueDeclare(a, { durable: true }, {
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": dlq,
    });
    await ch.queueDeclare(sibling, { durable: true });
    await ch.queueBind(a, x, "order.*");
    await ch.basicPublish(x, "order.new", "o1", { deliveryMode: 2 });
    await drain(client, sibling);
    await rejectAll(client, a);
    await until("the dead letter", async () => (await queueDepth(client, dlq)) === 1);
    await ch.queueBind(sibling, x, "order.*"); // the topology changed since: now two queues take the key
    const r = await run(["redrive", "--from", dlq, "--via-exchange"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await drain(client, a)).map((m) => m.bodyToString()), ["o1"]);
    assertEquals((await drain(client, sibling)).map((m) => m.bodyToString()), ["o1"]);
    assertEquals(await queueDepth(client, dlq), 0);
    await ch.close();
  });
});

Deno.test("redrive: a dead letter its queue refuses is exit 7, stays in the DLQ, and is not reported as redriven", async () => {
  const p = unique("kmq-rd");
  const [dlq, origin] = [`${p}.dlq`, `${p}.origin`];
  await withCleanup({ queues: [dlq, origin] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(dlq, { durable: true });
    await ch.queueDeclare(origin, { durable: true }, {
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": dlq,
    });
    await ch.basicPublish("", origin, "refused", { deliveryMode: 2 });
    await rejectAll(client, origin);
    await until("the dead letter", async () => (await queueDepth(client, dlq)) === 1);
    // the origin now takes nothing: the broker nacks the republished message
    await ch.queueDelete(origin);
    await ch.queueDeclare(origin, { durable: true }, { "x-max-length": 0, "x-overflow": "reject-publish" });
    const r = await run(["redrive", "--from", dlq]);
    assertEquals(r.code, 7, r.stderr);
    assertMatch(r.stderr, /the target refused 1 message\(s\)/);
    assertMatch(r.stdout, /^0 message\(s\) redriven from queue/);
    assertEquals([await queueDepth(client, dlq), await queueDepth(client, origin)], [1, 0]);
    await ch.close();
  });
});
