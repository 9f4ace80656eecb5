/**
 * Fault scenarios for `kmq consume`: the broker killed (-9) and started again, connections reset
 * or black-holed, kmq itself killed, signals. Every scenario checks that each message put in the
 * queue was consumed at least once or is still in the queue, and that every run ends in time.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Running, type RunResult, sleep, unique } from "../helpers.ts";
import { account, fill, finish, linesOf, proxiedScenario, scenario, takeAll, waitFor } from "./scenarios.ts";

/** A consumer printing one line per message (or, with a command, the command's output). */
function consumer(url: string, queue: string, extra: string[] = [], command: string[] = []): Running {
  const args = ["-v", "consume", "-q", queue, "-e", "", ...extra];
  return new Running(command.length ? [...args, "--", ...command] : args, { env: { KMQ_URL: url } });
}

/** A handler that echoes the body as one line: what it prints is what it handled. */
const ECHO = ["/bin/sh", "-c", "cat; echo"];

const uniqueLines = (r: Running) => new Set(linesOf(r.stdout)).size;

/** The result of a consumer sent SIGTERM: it must end within 20 s, with exit 143. */
async function stopped(c: Running): Promise<RunResult> {
  const r = await finish(c, 20_000, "consume after SIGTERM");
  assertEquals(r.code, 143, r.stderr);
  return r;
}

for (const withCommand of [false, true]) {
  const mode = withCommand ? "running a command" : "printing";
  scenario(`2: broker killed (-9) and started again under kmq consume ${mode}`, async (node) => {
    const N = withCommand ? 3000 : 20_000;
    const q = unique("f2");
    await fill(node.url, q, N);
    await node.syncMetadata(); // else the kill may take the just-declared queue with it
    const started = performance.now();
    // prefetch 1 (or a command per message) keeps the consumer busy long enough to be hit mid-stream
    const c = consumer(node.url, q, withCommand ? ["-c", "2"] : ["-p", "1"], withCommand ? ECHO : []);
    try {
      await waitFor(() => uniqueLines(c) >= N / 10, 30_000, "the consumer to get going");
      await node.kill9();
      await node.relaunch();
      await waitFor(
        () => uniqueLines(c) >= N,
        60_000,
        `all ${N} messages after the kill`,
        async () =>
          `${uniqueLines(c)} seen; queues: ${await node.describeQueues(
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
          )}; stderr: ${c.stderr}`,
      );
      assertMatch(c.stderr, /reconnecting[\s\S]*reconnected/);
    } finally {
      c.kill("SIGTERM");
    }
    const r = await stopped(c);
    await account(`2 consume ${mode}, broker killed -9`, N, linesOf(r.stdout), started);
    assertEquals(await node.queueMessages(q), 0, "every message handled was acked");
  });
}

proxiedScenario("3b: a proxy resets the connection 10 times during consume", async (node, proxy) => {
  const N = 3000;
  const q = unique("f3b");
  await fill(node.url, q, N);
  const started = performance.now();
  const c = consumer(`amqp://guest:guest@127.0.0.1:${proxy.port}/`, q, [], ECHO);
  try {
    for (let i = 1; i <= 10; i++) {
      await waitFor(() => uniqueLines(c) >= (i * N) / 12, 60_000, `${i}/12 of the messages`);
      proxy.cut();
      await waitFor(() => proxy.accepted > i, 30_000, `reconnection ${i}`);
    }
    await waitFor(() => uniqueLines(c) >= N, 60_000, `all ${N} messages`);
  } finally {
    c.kill("SIGTERM");
  }
  const r = await stopped(c);
  await account(
    "3 consume running a command, 10 connection resets",
    N,
    linesOf(r.stdout),
    started,
  );
  assertEquals(await node.queueMessages(q), 0, "every message handled was acked");
});

proxiedScenario(
  "4b: a black hole under consume is noticed within twice the heartbeat, then recovered",
  async (node, proxy) => {
    const heartbeat = 2;
    const q = unique("f4b");
    await fill(node.url, q, 1000);
    const started = performance.now();
    const c = consumer(`amqp://guest:guest@127.0.0.1:${proxy.port}/?heartbeat=${heartbeat}`, q);
    let noticed = 0;
    try {
      await waitFor(() => uniqueLines(c) >= 1000, 30_000, "the first 1000 messages");
      proxy.blackHole();
      const holed = Date.now();
      await waitFor(
        () => c.stderr.includes("reconnecting"),
        4 * heartbeat * 1000,
        "the black hole noticed",
      );
      noticed = Date.now() - holed;
      assert(
        noticed <= 2 * heartbeat * 1000 + 1000,
        `noticed after ${noticed} ms (heartbeat ${heartbeat} s)`,
      );
      proxy.resume();
      await fill(node.url, q, 1000, 1001);
      await waitFor(() => uniqueLines(c) >= 2000, 30_000, "the messages sent after the black hole");
    } finally {
      c.kill("SIGTERM");
    }
    const r = await stopped(c);
    await account(
      "4 consume, black hole",
      2000,
      linesOf(r.stdout),
      started,
      `noticed in ${noticed} ms`,
    );
  },
);

scenario(
  "5: kmq consume killed with SIGKILL mid-stream: every message not acked is still in the queue",
  async (node) => {
    const N = 100_000;
    const q = unique("f5");
    await fill(node.url, q, N);
    const started = performance.now();
    const c = consumer(node.url, q);
    await waitFor(() => uniqueLines(c) >= 1000, 30_000, "the consumer to get going");
    c.kill("SIGKILL");
    const r = await finish(c, 10_000, "consume after SIGKILL");
    const printed = linesOf(r.stdout);
    assert(printed.length < N, `killed mid-stream (${printed.length} of ${N} printed)`);
    const left = await takeAll(node.url, q);
    await account(
      "5 consume killed -9 (printed + left in queue)",
      N,
      [...printed, ...left],
      started,
    );
  },
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  scenario(`6: ${signal} during consume: exit 128+n, says how many, the rest still queued`, async (node) => {
    const N = 100_000;
    const q = unique("f6c");
    await fill(node.url, q, N);
    const started = performance.now();
    const c = consumer(node.url, q);
    await waitFor(() => uniqueLines(c) >= 1000, 30_000, "the consumer to get going");
    c.kill(signal);
    const r = await finish(c, 10_000, `consume after ${signal}`);
    assertEquals(r.code, signal === "SIGINT" ? 130 : 143, r.stderr);
    const printed = linesOf(r.stdout);
    const said = new RegExp(`stopped by ${signal}: (\\d+) message\\(s\\) written and settled`).exec(
      r.stderr,
    );
    assert(said, `says how many: ${r.stderr}`);
    assertEquals(Number(said[1]), printed.length);
    const left = await takeAll(node.url, q);
    assertEquals(left.length, N - printed.length, "exactly the messages not printed are left");
    const t = await account(
      `6 consume, ${signal} (printed + left in queue)`,
      N,
      [...printed, ...left],
      started,
    );
    assertEquals(t.duplicated, 0);
  });
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  scenario(
    `8: ${signal} to the whole process group (a terminal's Ctrl-C, systemd's stop) during consume -- command: nothing rejected`,
    async (node) => {
      const N = 20;
      const q = unique("f8c");
      const dlq = `${q}-dead`;
      const started = performance.now();
      // the command reads the body, sleeps, then prints it: what it prints is what it handled
      const c = await groupConsumer(node.url, q, N, 10, 'b=$(cat); sleep 2; echo "$b"');
      await sleep(1000); // four commands are in their sleep
      await c.killGroup(signal);
      const r = await finish(c, 20_000, `consume after ${signal} to its group`);
      assertEquals(r.code, signal === "SIGINT" ? 130 : 143, r.stderr);
      assert(!/rejected/.test(r.stderr), `nothing rejected: ${r.stderr}`);
      const handled = linesOf(r.stdout);
      assertEquals(handled.length, 4, `the four commands in hand finished: ${r.stderr}`);
      assertEquals(await takeAll(node.url, dlq), [], "nothing dead-lettered");
      const left = await takeAll(node.url, q);
      const t = await account(`8 consume -c 4, ${signal} to the group`, N, [...handled, ...left], started);
      assertEquals(t.duplicated, 0);
    },
  );
}

scenario(
  "8b: SIGTERM to the group with commands that outlive --stop-timeout: they are stopped and requeued",
  async (node) => {
    const N = 8;
    const q = unique("f8b");
    const dlq = `${q}-dead`;
    const started = performance.now();
    const c = await groupConsumer(node.url, q, N, 1, "cat >/dev/null; sleep 30");
    await sleep(1000);
    const signalled = Date.now();
    await c.killGroup("SIGTERM");
    const r = await finish(c, 15_000, "consume after SIGTERM with slow commands");
    assert(Date.now() - signalled < 10_000, "stopped within --stop-timeout and a little");
    assertEquals(r.code, 143, r.stderr);
    assertMatch(r.stderr, /commands still running after --stop-timeout 1 s: stopping them \(SIGTERM\)/);
    assertMatch(r.stderr, /handler stopped by SIGTERM .*: requeued/);
    assertEquals(await takeAll(node.url, dlq), [], "nothing dead-lettered");
    await account(
      "8b consume, SIGTERM, commands past --stop-timeout",
      N,
      await takeAll(node.url, q),
      started,
    );
  },
);

scenario("10: --exec-timeout kills the command's whole process group (a grandchild too)", async (node) => {
  const q = unique("f10");
  await fill(node.url, q, 1);
  const started = performance.now();
  const pidFile = await Deno.makeTempFile();
  // bash, then its child sleep: a grandchild of kmq, whose pid is written down
  const script = `sleep 20 & echo $! > ${pidFile}; wait $!; true`;
  const c = consumer(node.url, q, ["-n", "1", "--exec-timeout", "1"], ["bash", "-c", script]);
  const r = await finish(c, 10_000, "consume with a grandchild past --exec-timeout");
  const grandchild = (await Deno.readTextFile(pidFile)).trim();
  await Deno.remove(pidFile);
  assert(/^\d+$/.test(grandchild), `the grandchild wrote its pid: '${grandchild}'`);
  // gone, or dead and not yet reaped (a zombie whose parent was killed waits for init to reap it)
  const running = async () => {
    try {
      const stat = await Deno.readTextFile(`/proc/${grandchild}/stat`);
      return !/^\d+ \(.*\) Z /.test(stat);
    } catch {
      return false;
    }
  };
  await waitFor(async () => !(await running()), 5_000, `the grandchild ${grandchild} to be gone too`);
  assertEquals(r.code, 8, r.stderr);
  assertMatch(r.stderr, /handler killed after --exec-timeout 1 s .*: requeued/);
  assertMatch(r.stderr, /1 message\(s\) not handled/);
  await account("10 consume, --exec-timeout with a grandchild", 1, await takeAll(node.url, q), started);
});

scenario(
  "11: the broker's consumer_timeout runs out under a slow command: kmq reconnects and carries on",
  async (node) => {
    await node.setConsumerTimeout(1000);
    const N = 3;
    const q = unique("f11");
    await fill(node.url, q, N);
    const started = performance.now();
    // the first message takes longer than the broker allows; RabbitMQ checks about once a minute
    const c = consumer(node.url, q, ["--idle-timeout", "5"], [
      "sh",
      "-c",
      'b=$(cat); [ "$b" = 1 ] && [ "$KMQ_REDELIVERED" = false ] && sleep 75; echo "$b"',
    ]);
    const r = await finish(c, 150_000, "consume past the broker's consumer_timeout");
    assertEquals(r.code, 0, r.stderr);
    assertMatch(
      r.stderr,
      /consumer_timeout \(1000 ms\) ran out while a message was in hand.*--exec-timeout below it/,
    );
    const left = await takeAll(node.url, q);
    assertEquals(left, [], "every message handled and acked");
    await account("11 consume, consumer_timeout under a slow command", N, linesOf(r.stdout), started);
  },
);

/**
 * `consume -c 4 -- sh -c SCRIPT` in a process group of its own (as a terminal's job), on a queue of
 * N messages that dead-letters into `${q}-dead`, so a rejected message can be told from a lost one.
 */
async function groupConsumer(url: string, q: string, n: number, stopTimeout: number, script: string) {
  await deadLettered(url, q, `${q}-dead`);
  await fill(url, q, n);
  const args = [
    "consume",
    "-q",
    q,
    "-e",
    "",
    "--no-declare",
    "-c",
    "4",
    "--stop-timeout",
    String(stopTimeout),
  ];
  return new Running([...args, "--", "sh", "-c", script], { env: { KMQ_URL: url }, setsid: true });
}

/** A queue whose rejected messages go to a second queue, so a test can tell rejected from lost. */
async function deadLettered(url: string, q: string, dlq: string): Promise<void> {
  const client = new AMQPClient(url);
  await client.connect();
  try {
    const ch = await client.channel();
    await ch.queueDeclare(dlq, { durable: true });
    await ch.queueDeclare(q, { durable: true }, {
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": dlq,
    });
  } finally {
    await client.close().catch(() => {});
  }
}
