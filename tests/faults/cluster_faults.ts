/**
 * Fault scenarios on a private 3-node cluster: kmq is given every node's address, the node it is
 * connected to dies, and kmq must carry on through another node with nothing lost. The queues are
 * quorum queues (replicated on all three nodes), so the messages outlive the node.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { assertFailure, queueDepth, Running, sleep, TEST_URL, unique, withCleanup } from "../helpers.ts";
import { PrivateCluster } from "../private_cluster.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
import { account, fill, finish, linesOf, numbered, takeAll, waitFor } from "./scenarios.ts";

function clusterScenario(name: string, fn: (cluster: PrivateCluster) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const cluster = new PrivateCluster();
      try {
        await cluster.start();
        await fn(cluster);
      } finally {
        await cluster.close();
      }
    },
  });
}

clusterScenario(
  "12: 100,000 lines into a quorum queue; the connected node is killed (-9)",
  async (cluster) => {
    const N = 100_000;
    const q = unique("f12");
    const [first, second] = cluster.nodes;
    const declared = new Running(["declare", "-e", "", "-q", q, "--queue-type", "quorum"], {
      env: { KMQ_URL: cluster.urls },
    });
    assertEquals((await declared.result()).code, 0);
    const started = performance.now();
    const p = new Running(["-v", "produce", "--lines", "-e", "", "-r", q], {
      env: { KMQ_URL: cluster.urls },
      pipeStdin: true,
    });
    await p.feed(numbered(1, N / 2));
    await waitFor(async () => (await second!.queueMessages(q)) >= N / 10, 60_000, "a tenth confirmed");
    await first!.kill9(); // the first address: the node kmq is connected to
    await p.feed(numbered(N / 2 + 1, N));
    await p.endInput();
    const r = await finish(p, 120_000, "produce across the node's death");
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /failed over to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+\/ \(address 2 of 3\)/);
    assertMatch(
      r.stderr,
      /published \d+, confirmed \d+, returned 0, nacked 0(, republished \d+)?, 1 failover\(s\)/,
    );
    await account("12 cluster produce, node killed -9", N, await takeAll(second!.url, q), started);
  },
);

const ECHO = ["--", "sh", "-c", "cat; echo"];

for (const withCommand of [false, true]) {
  const mode = withCommand ? "running a command" : "printing";
  clusterScenario(
    `13: kmq consume ${mode} from a quorum queue; the connected node is stopped`,
    async (cluster) => {
      const N = withCommand ? 2000 : 20_000;
      const q = unique("f13");
      const [first, second] = cluster.nodes;
      const declared = new Running(["declare", "-e", "", "-q", q, "--queue-type", "quorum"], {
        env: { KMQ_URL: cluster.urls },
      });
      assertEquals((await declared.result()).code, 0);
      await fill(second!.url, q, N);
      const started = performance.now();
      // until idle, not -n: a message handled twice across the failover would leave another unread
      const until = ["--idle-timeout", "5"];
      const c = new Running(
        ["consume", "-e", "", "-q", q, ...until, ...(withCommand ? ["-c", "2", ...ECHO] : ["-p", "1"])],
        { env: { KMQ_URL: cluster.urls } },
      );
      const seen = () => new Set(linesOf(c.stdout)).size;
      await waitFor(() => seen() >= N / 10, 60_000, "the consumer to get going");
      await first!.stopApp();
      const r = await finish(c, 120_000, "consume across the node's stop");
      assertEquals(r.code, 0, r.stderr);
      assertMatch(r.stderr, /failed over to .*\(address 2 of 3\)/);
      assertMatch(r.stderr, /with 1 failover\(s\) to another node/);
      await account(`13 cluster consume ${mode}, node stopped`, N, linesOf(r.stdout), started);
      assertEquals((await takeAll(second!.url, q)).length, 0, "every message handled was acked");
    },
  );
}

clusterScenario(
  "19: move from a quorum queue of 50,000 whose leader node is killed (-9): exit 0 only when the source is empty",
  async (cluster) => {
    const N = 50_000;
    const [q, dst] = [unique("f19src"), unique("f19dst")];
    const [first, second] = cluster.nodes;
    const declared = new Running(["declare", "-e", "", "-q", q, "--queue-type", "quorum"], {
      env: { KMQ_URL: cluster.urls }, // declared through the first node: its leader is there
    });
    assertEquals((await declared.result()).code, 0);
    await fill(second!.url, q, N);
    const started = performance.now();
    await withCleanup({ queues: [dst] }, async (client) => {
      // kmq's connection is to a node that survives: only the queue's leader goes
      const m = new Running(["move", "--from", q, "--to", dst, "--to-url", TEST_URL, "--rate", "5000"], {
        env: { KMQ_URL: second!.url },
      });
      await waitFor(async () => (await queueDepth(client, dst)) >= N / 10, 60_000, "a tenth moved");
      await first!.kill9();
      const r = await finish(m, 180_000, "move across the leader's death");
      const left = await takeAll(second!.url, q);
      const moved = await takeAll(TEST_URL, dst);
      await account(
        "19 move from quorum, leader killed -9",
        N,
        [...moved, ...left],
        started,
        `exit ${r.code}, ${left.length} left`,
      );
      if (r.code === 0) assertEquals(left.length, 0, `exit 0 with messages in the source: ${r.stderr}`);
      else assertMatch(r.stderr, /stay in queue|still in/);
    });
  },
);

clusterScenario(
  "19b: move from a quorum queue whose leader node is frozen (SIGSTOP): kmq waits for it, never reads its silence as empty",
  async (cluster) => {
    const N = 20_000;
    const [first, second] = cluster.nodes;
    for (const [round, extra] of [[1, []], [2, ["--retry-timeout", "3", "--stop-timeout", "2"]]] as const) {
      const [q, dst] = [unique("f19bsrc"), unique("f19bdst")];
      const declared = new Running(["declare", "-e", "", "-q", q, "--queue-type", "quorum"], {
        env: { KMQ_URL: first!.url }, // its leader is on the first node
      });
      assertEquals((await declared.result()).code, 0);
      await fill(second!.url, q, N);
      const started = performance.now();
      await withCleanup({ queues: [dst] }, async (client) => {
        const m = new Running(
          ["move", "--from", q, "--to", dst, "--to-url", TEST_URL, "--rate", "5000", ...extra],
          { env: { KMQ_URL: second!.url } },
        );
        await waitFor(async () => (await queueDepth(client, dst)) >= 2000, 60_000, "2,000 moved");
        // RabbitMQ answers "0 messages, 0 consumers" for the queue while its leader is frozen
        await first!.freeze();
        let r;
        try {
          if (round === 1) {
            await sleep(8_000);
            assert(!m.exited, `the move ended while the source's leader was frozen: ${m.stderr}`);
          } else {
            // past --retry-timeout the move stops (exit 7) while the leader is still frozen
            r = await finish(m, 30_000, "move with a frozen leader past --retry-timeout");
          }
        } finally {
          await first!.thaw();
        }
        r ??= await finish(m, 120_000, "move after the leader came back");
        const left = await takeAll(second!.url, q);
        const moved = await takeAll(TEST_URL, dst);
        await account(
          `19b move from quorum, leader frozen${round === 2 ? " past --retry-timeout" : ""}`,
          N,
          [...moved, ...left],
          started,
          `exit ${r.code}, ${left.length} left`,
        );
        if (round === 1) {
          assertEquals([r.code, left.length], [0, 0], r.stderr);
        } else {
          assertEquals(r.code, 7, r.stderr);
          assertMatch(r.stderr, /has not answered for its count for 3 s .*stays in 'f19bsrc-/);
          assert(left.length > 0, "the source kept what was not moved");
        }
        assertMatch(r.stderr, /queue 'f19bsrc-[0-9a-f]+' does not answer for its count/);
      });
    }
  },
);

clusterScenario(
  "19c: a quorum queue whose leader is frozen is not empty to consume --exit-at-end, move --exit-at-end, export or import (exit 4)",
  async (cluster) => {
    const N = 2000;
    const [first, second] = cluster.nodes;
    const [q, dst] = [unique("f19csrc"), unique("f19cdst")];
    const declared = new Running(["declare", "-e", "", "-q", q, "--queue-type", "quorum"], {
      env: { KMQ_URL: first!.url }, // its leader is on the first node
    });
    assertEquals((await declared.result()).code, 0);
    await fill(second!.url, q, N);
    const dir = await Deno.makeTempDir();
    const file = `${dir}/frozen.kmq`;
    const env = { KMQ_URL: second!.url };
    // an export of another queue, to import into the frozen one (renamed, as quorum)
    const other = unique("f19cother");
    const made = new Running(["produce", "-e", "", "-r", other, "-q", other, "one"], { env });
    assertEquals((await made.result()).code, 0);
    const exported = new Running(["export", "-q", other, `${dir}/other.kmq`], { env });
    assertEquals((await exported.result()).code, 0, "the export to import");
    await first!.freeze(); // RabbitMQ now answers "0 messages, 0 consumers" for the queue
    let results;
    try {
      const started = Date.now();
      results = await Promise.all(
        [
          ["consume", "-e", "", "-q", q, "--exit-at-end"],
          ["move", "--from", q, "--to", dst, "--exit-at-end", "--retry-timeout", "5"],
          ["export", "-q", q, file],
          ["import", `${dir}/other.kmq`, "--rename", `${other}=${q}`, "--queue-type", "quorum"],
        ].map((args) => finish(new Running(args, { env }), 60_000, args[0]!)),
      );
      assert(Date.now() - started < 40_000, `they took ${Date.now() - started} ms`);
    } finally {
      await first!.thaw();
    }
    for (const [i, r] of results.entries()) {
      // export and import also say they go without the management API: more than one line
      if (i < 2) assertFailure(r, 4, new RegExp(`queue '${q}' did not answer for its count in (10|5) s`));
      else {
        assertEquals(r.code, 4, r.stderr);
        assertMatch(r.stderr, new RegExp(`kmq: queue '${q}' did not answer for its count in 10 s`));
      }
      assertEquals(r.stdout, "");
    }
    assert(!(await exists(file)), "no export file was written");
    await waitFor(async () => (await second!.queueMessages(q)) === N, 60_000, `${N} still in the queue`);
  },
);

clusterScenario(
  "20: redrive 20,000 dead letters from a quorum DLQ whose leader node is killed (-9): nothing lost",
  async (cluster) => {
    const N = 20_000;
    const [dlq, origin] = [unique("f20dlq"), unique("f20origin")];
    const [first, second] = cluster.nodes;
    const client = new AMQPClient(first!.url); // the DLQ's leader is where it is declared
    await client.connect();
    const ch = await client.channel();
    await ch.queueDeclare(dlq, { durable: true }, { "x-queue-type": "quorum" });
    await ch.queueDeclare(origin, { durable: true }, {
      "x-queue-type": "quorum",
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": dlq,
    });
    await client.close();
    await fill(second!.url, origin, N);
    // every message rejected: dead-lettered into the DLQ with an x-death naming the origin
    const rejecter = new AMQPClient(second!.url);
    await rejecter.connect();
    const rch = await rejecter.channel();
    await rch.prefetch(1000);
    await rch.basicConsume(origin, { noAck: false }, (m) => void m.reject(false));
    await waitFor(async () => (await depthAt(second!.url, dlq)) === N, 120_000, "20,000 dead letters");
    await rejecter.close();
    const started = performance.now();
    // kmq's connection is to a node that survives: only the DLQ's leader goes
    const r0 = new Running(["redrive", "--from", dlq, "--accept-delivery-count", "--rate", "4000"], {
      env: { KMQ_URL: second!.url },
    });
    await waitFor(async () => (await depthAt(second!.url, origin)) >= N / 10, 60_000, "a tenth redriven");
    await first!.kill9();
    const r = await finish(r0, 180_000, "redrive across the leader's death");
    const back = await takeAll(second!.url, origin);
    const left = await takeAll(second!.url, dlq);
    await account(
      "20 redrive from quorum, leader killed -9",
      N,
      [...back, ...left],
      started,
      `exit ${r.code}`,
    );
    if (r.code !== 0) assertMatch(r.stderr, /stay in queue|still in|stay in '/);
    // kmq route on the cluster's own definitions: the origin's dead letters go to the DLQ
    const defs = await new Deno.Command("rabbitmqctl", {
      args: ["-n", second!.node, "-q", "export_definitions", "-"],
      stdout: "piped",
    }).output();
    const file = await Deno.makeTempFile({ suffix: ".json" });
    try {
      await Deno.writeFile(file, defs.stdout);
      const routed = new Running(["route", "--definitions", file, "--dead-letters", origin, "-o", "json"], {
        env: { KMQ_URL: second!.url },
      });
      const out = await routed.result();
      assertEquals([out.code, JSON.parse(out.stdout).queues], [0, [dlq]], out.stderr);
    } finally {
      await Deno.remove(file).catch(() => {});
    }
  },
);

/** Messages ready in a queue, asked through the node at `url`. */
async function depthAt(url: string, queue: string): Promise<number> {
  const client = new AMQPClient(url);
  await client.connect();
  try {
    return await queueDepth(client, queue);
  } finally {
    await client.close().catch(() => {});
  }
}
