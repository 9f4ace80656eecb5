/**
 * Quorum queues count every requeue toward their delivery limit before RabbitMQ 4.3: a peek, a
 * message --filter holds and puts back. kmq refuses to take such risks silently (exit 2 naming
 * --accept-delivery-count) and never pushes a message over its limit by looking at it. Streams
 * get their own behaviour in peek, purge and delete --if-empty.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  drain,
  kmqCommand,
  queueDepth,
  run,
  Running,
  sleep,
  TEST_URL,
  unique,
  withCleanup,
} from "./helpers.ts";
import { PrivateBroker, waitForApi } from "./private_broker.ts";

function numbered(n: number): string {
  return Array.from({ length: n }, (_, i) => String(i + 1)).join("\n") + "\n";
}

async function quorumQueue(q: string, n: number, env: Record<string, string> = {}, ...args: string[]) {
  const d = await run(["declare", "-e", "", "-q", q, "--queue-type", "quorum", ...args], { env });
  assertEquals(d.code, 0, d.stderr);
  const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--lines", "--quiet"], {
    stdin: numbered(n),
    env,
  });
  assertEquals(p.code, 0, p.stderr);
}

Deno.test("peek on a quorum queue with a delivery limit: refused (exit 2); four tries lose nothing", async () => {
  const q = unique("kmq-qq");
  await withCleanup({ queues: [q] }, async (client) => {
    await quorumQueue(q, 5, {}, "--delivery-limit", "2");
    for (let i = 0; i < 4; i++) {
      const r = await run(["peek", "-q", q, "-n", "3"]);
      assertFailure(
        r,
        2,
        /quorum queue with a delivery limit of 2 \(x-delivery-limit\): every message peek puts back counts one delivery.*--accept-delivery-count/,
      );
      assertEquals(r.stdout, "");
    }
    for (
      const args of [["consume", "-e", "", "-q", q, "--filter", 'body == "4"', "-n", "1"], [
        "move",
        "--from",
        q,
        "--to",
        unique("kmq-never"),
        "--filter",
        'body == "4"',
      ]]
    ) {
      const r = await run(args, { timeoutMs: 30_000 });
      assertFailure(r, 2, /quorum queue with a delivery limit of 2 .*every message --filter puts back/);
    }
    const accepted = await run(["peek", "-q", q, "-n", "2", "--accept-delivery-count"]);
    assertEquals(accepted.code, 0, accepted.stderr);
    assertEquals(accepted.stdout, "1\n2\n");
    assertMatch(accepted.stderr, /accepted with --accept-delivery-count/);
    const left = (await drain(client, q)).map((
      m,
    ) => [m.bodyToString(), m.properties.headers?.["x-delivery-count"]]);
    // nothing lost; only the two peeked with the flag were counted once
    assertEquals(left.map(([b]) => b).sort(), ["1", "2", "3", "4", "5"]);
    assertEquals(left.filter(([, c]) => Number(c) > 0).map(([b]) => b).sort(), ["1", "2"]);
  });
});

Deno.test("the management API tells a quorum queue's policy limit: none → peek works; a policy's → refused, and named in a conflict", async () => {
  const node = new PrivateBroker(undefined, { management: true });
  try {
    await node.start();
    await waitForApi(node.managementPort);
    const env = {
      KMQ_URL: `amqp://guest:guest@127.0.0.1:${node.port}/`,
      KMQ_API_URL: `http://127.0.0.1:${node.managementPort}/`,
    };
    await quorumQueue("free", 3, env);
    const r = await run(["peek", "-q", "free", "-n", "3"], { env });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, numbered(3));
    assertMatch(r.stderr, /quorum queue: what peek puts back goes behind the messages not taken/);
    await quorumQueue("limited", 3, env);
    const policy = await new Deno.Command("rabbitmqctl", {
      args: [
        "-n",
        node.node,
        "set_policy",
        "limit",
        "^limited$",
        '{"delivery-limit": 5}',
        "--apply-to",
        "queues",
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert(policy.success, new TextDecoder().decode(policy.stderr));
    // a policy reaches a queue a moment after it is set: wait until the API shows it applied
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const res = await fetch(`${env.KMQ_API_URL}api/queues/%2F/limited`, {
        headers: { authorization: `Basic ${btoa("guest:guest")}` },
      });
      const q = await res.json() as { effective_policy_definition?: Record<string, unknown> };
      if (q.effective_policy_definition?.["delivery-limit"] === 5) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const refused = await run(["peek", "-q", "limited"], { env });
    assertFailure(refused, 2, /quorum queue with a delivery limit of 5 \(policy 'limit'\)/);
    // a conflicting declaration names every difference, and the policy that sets one of them
    const conflict = await run(
      [
        "declare",
        "-e",
        "",
        "-q",
        "limited",
        "--queue-type",
        "quorum",
        "--delivery-limit",
        "9",
        "--message-ttl",
        "1000",
      ],
      { env },
    );
    assertFailure(
      conflict,
      6,
      /it exists without x-delivery-limit where the command line asks for '9', and without x-message-ttl where it asks for '1000' \(policy 'limit' sets delivery-limit 5 on it: a policy, not an argument/,
    );
  } finally {
    await node.close();
  }
});

Deno.test("streams: peek reads from the first offset, purge and delete --if-empty are refused (exit 6)", async () => {
  const s = unique("kmq-stream");
  await withCleanup({ queues: [s] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", s, "-q", s, "--queue-type", "stream", "--lines"], {
      stdin: numbered(5),
    });
    assertEquals(p.code, 0, p.stderr);
    for (let i = 0; i < 2; i++) {
      const r = await run(["peek", "-q", s, "-n", "3"], { timeoutMs: 30_000 });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "1\n2\n3\n");
    }
    const all = await run(["peek", "-q", s, "-n", "50"], { timeoutMs: 30_000 });
    assertEquals(all.stdout, numbered(5));
    assertFailure(await run(["purge", s]), 6, /is a stream: streams cannot be purged/);
    assertFailure(
      await run(["delete", "queue", s, "--if-empty"]),
      6,
      /is a stream: .*--if-empty cannot be checked/,
    );
    assert((await queueDepth(client, s)) >= 0, "the stream is still there");
  });
});

Deno.test("peek: an empty queue says so; a reader that goes away is exit 141 and nothing is taken", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const d = await run(["declare", "-e", "", "-q", q]);
    assertEquals(d.code, 0, d.stderr);
    const empty = await run(["peek", "-q", q]);
    assertEquals(empty.code, 0, empty.stderr);
    assertEquals(empty.stdout, "");
    assertMatch(empty.stderr, new RegExp(`^kmq: queue '${q}' is empty\\n$`));
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--lines", "--quiet"], {
      stdin: numbered(3000),
    });
    assertEquals(p.code, 0, p.stderr);
    const [cmd, pre] = kmqCommand();
    const out = await new Deno.Command("bash", {
      args: ["-c", `"$@" peek -q ${q} -n 3000 | head -1; exit \${PIPESTATUS[0]}`, "bash", cmd, ...pre],
      env: { KMQ_URL: TEST_URL, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 141, stderr);
    assertEquals(new TextDecoder().decode(out.stdout), "1\n");
    assertMatch(stderr, /^kmq: the reader of stdout went away: nothing was taken/);
    const left = (await drain(client, q)).map((m) => m.bodyToString());
    assertEquals(left, numbered(3000).trimEnd().split("\n"), "all there, in order");
  });
});

Deno.test("a consumer stopped with messages in hand on a quorum queue: none is pushed past its delivery limit", async () => {
  const q = unique("kmq-qstop");
  await withCleanup({ queues: [q] }, async (client) => {
    await quorumQueue(q, 20, {}, "--delivery-limit", "1");
    const handled: string[] = [];
    // each run takes 20 in hand (prefetch), handles about one, and is stopped: the rest go back;
    // a second return would take them past x-delivery-limit 1 (RabbitMQ 3.10 drops them then)
    for (let i = 1; i <= 4; i++) {
      const c = new Running(["-v", "consume", "-q", q, "-p", "20", "--", "sh", "-c", "cat; echo; sleep 0.5"]);
      await c.waitForStderr("consuming from", 20_000);
      await sleep(700);
      c.kill("SIGINT");
      const r = await c.result();
      assertEquals(r.code, 130, r.stderr);
      handled.push(...r.stdout.split("\n").filter(Boolean));
      // the second run holds messages returned once already: those go to the tail, fresh (the
      // third run's, fresh again, can go back once more)
      if (i === 2) {
        assertMatch(r.stderr, /message\(s\) in hand went to the tail of quorum queue '.*' as new messages/);
      }
    }
    const left = (await drain(client, q)).map((m) => m.bodyToString() ?? "");
    assertEquals(
      [...handled, ...left].map(Number).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  });
});
