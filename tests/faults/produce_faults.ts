/**
 * Fault scenarios for `kmq produce`: the broker restarted, connections reset or black-holed,
 * signals, a memory alarm. Every scenario checks that a produce exiting 0 had every line confirmed
 * (each is in the queue at least once) and that every run ends within its deadline.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Running, sleep, unique } from "../helpers.ts";
import {
  account,
  finish,
  numbered,
  proxiedScenario,
  scenario,
  takeAll,
  tally,
  waitFor,
} from "./scenarios.ts";

function producer(url: string, queue: string, extra: string[] = []): Running {
  return new Running(["-v", "produce", "--lines", "-e", "", "-r", queue, "-q", queue, ...extra], {
    env: { KMQ_URL: url },
    pipeStdin: true,
  });
}

const count = (text: string, pattern: RegExp) => text.match(new RegExp(pattern, "g"))?.length ?? 0;

scenario("1: broker restarted 3 times during a 100,000-line produce --lines", async (node) => {
  const N = 100_000;
  const q = unique("f1");
  const started = performance.now();
  const p = producer(node.url, q);
  const chunk = N / 4;
  for (let i = 0; i < 4; i++) {
    await p.feed(numbered(i * chunk + 1, (i + 1) * chunk));
    if (i < 3) {
      // restart under an established connection, not one still reconnecting from the last restart
      await waitFor(() => count(p.stderr, /connected to .* \(heartbeat/) > i, 30_000, `connection ${i + 1}`);
      await sleep(150); // some of the chunk is in flight, unconfirmed
      await node.restart();
    }
  }
  await p.endInput();
  const r = await finish(p, 90_000, "produce across restarts");
  assertEquals(r.code, 0, r.stderr);
  assert(count(r.stderr, /reconnecting/) >= 3, `reconnected after each restart: ${r.stderr}`);
  assertMatch(r.stderr, /published \d+, confirmed \d+, returned 0, nacked 0/);
  await account("1 produce, broker restarted 3x", N, await takeAll(node.url, q), started);
});

proxiedScenario("3a: a proxy resets the connection 10 times during produce", async (node, proxy) => {
  const N = 100_000;
  const q = unique("f3a");
  const started = performance.now();
  const p = producer(`amqp://guest:guest@127.0.0.1:${proxy.port}/`, q);
  const chunk = N / 10;
  for (let i = 0; i < 10; i++) {
    await p.feed(numbered(i * chunk + 1, (i + 1) * chunk));
    // cut an established connection each time, not one still reconnecting
    await waitFor(() => count(p.stderr, /connected to .* \(heartbeat/) > i, 30_000, `connection ${i + 1}`);
    await sleep(100);
    proxy.cut();
  }
  await p.endInput();
  const r = await finish(p, 90_000, "produce across resets");
  assertEquals(r.code, 0, r.stderr);
  assert(proxy.accepted >= 11, `reconnected after each reset (${proxy.accepted} connections)`);
  await account("3 produce, 10 connection resets", N, await takeAll(node.url, q), started);
});

proxiedScenario(
  "4a: a black hole under produce is noticed within twice the heartbeat, then recovered",
  async (node, proxy) => {
    const heartbeat = 2;
    const q = unique("f4a");
    const started = performance.now();
    const p = producer(`amqp://guest:guest@127.0.0.1:${proxy.port}/?heartbeat=${heartbeat}`, q);
    let sent = 0;
    const send = async (n: number) => {
      await p.feed(numbered(sent + 1, sent + n));
      sent += n;
    };
    await send(1000);
    await sleep(300);
    proxy.blackHole();
    const holed = Date.now();
    // a trickle keeps going into the hole: nothing confirms it
    while (!p.stderr.includes("connection lost")) {
      if (Date.now() - holed > 4 * heartbeat * 1000) break;
      await send(10);
      await sleep(50);
    }
    const noticed = Date.now() - holed;
    assert(p.stderr.includes("connection lost"), `black hole noticed: ${p.stderr}`);
    assert(
      noticed <= 2 * heartbeat * 1000 + 1000,
      `noticed after ${noticed} ms (heartbeat ${heartbeat} s)`,
    );
    proxy.resume();
    await send(1000);
    await p.endInput();
    const r = await finish(p, 60_000, "produce after a black hole");
    assertEquals(r.code, 0, r.stderr);
    await account(
      "4 produce, black hole",
      sent,
      await takeAll(node.url, q),
      started,
      `noticed in ${noticed} ms`,
    );
  },
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  scenario(
    `6: ${signal} during produce: exit ${signal === "SIGINT" ? 130 : 143}, every line sent confirmed`,
    async (node) => {
      const q = unique("f6p");
      const started = performance.now();
      const p = producer(node.url, q);
      await p.feed(numbered(1, 20_000));
      await sleep(300);
      p.kill(signal);
      const r = await finish(p, 30_000, `produce after ${signal}`);
      assertEquals(r.code, signal === "SIGINT" ? 130 : 143, r.stderr);
      const said = /published (\d+), confirmed (\d+), returned 0, nacked 0/.exec(r.stderr);
      assert(said, `the summary is printed: ${r.stderr}`);
      assertMatch(
        r.stderr,
        new RegExp(`stopped by ${signal}: the \\d+ message\\(s\\) sent were all confirmed`),
      );
      const confirmed = Number(said[2]);
      assertEquals(Number(said[1]), confirmed, "everything published was confirmed");
      assert(confirmed > 0 && confirmed < 20_000, `the signal landed mid-run (${confirmed} confirmed)`);
      const bodies = await takeAll(node.url, q);
      await account(`6 produce, ${signal}`, confirmed, bodies, started);
      assertEquals(bodies.length, confirmed, "and nothing else");
    },
  );
}

scenario(
  "7: a memory alarm blocks produce: kmq says so, waits, and finishes when it clears",
  async (node) => {
    const q = unique("f7");
    const started = performance.now();
    const p = producer(node.url, q);
    await p.feed(numbered(1, 5000));
    await sleep(300);
    await node.setMemoryAlarm();
    try {
      await p.feed(numbered(5001, 10_000));
      await waitFor(() => p.stderr.includes("blocked publishing"), 15_000, "kmq to say it is blocked");
      await sleep(2000);
      assertEquals(
        await Promise.race([p.child.status.then(() => "exited"), sleep(10).then(() => "waiting")]),
        "waiting",
      );
    } finally {
      await node.clearMemoryAlarm();
    }
    await p.endInput();
    const r = await finish(p, 30_000, "produce after the alarm cleared");
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /the broker blocked publishing \(.*\); waiting until it unblocks/);
    assertMatch(r.stderr, /unblocked publishing; carrying on/);
    await account("7 produce, memory alarm", 10_000, await takeAll(node.url, q), started);
  },
);

scenario(
  "8: confirms that never come (memory alarm): SIGTERM gives up after --stop-timeout with exit 7",
  async (node) => {
    const q = unique("f8p");
    const started = performance.now();
    const p = producer(node.url, q, ["--stop-timeout", "1"]);
    await p.feed(numbered(1, 2000));
    await sleep(500);
    await node.setMemoryAlarm();
    try {
      await p.feed(numbered(2001, 4000));
      await waitFor(() => p.stderr.includes("blocked publishing"), 15_000, "kmq to say it is blocked");
      const signalled = Date.now();
      p.kill("SIGTERM");
      const r = await finish(p, 15_000, "produce after SIGTERM under an alarm");
      const took = Date.now() - signalled;
      assertEquals(r.code, 7, r.stderr);
      assertMatch(
        r.stderr,
        /stopped by SIGTERM: no confirm within --stop-timeout 1 s; (\d+) message\(s\) confirmed; \d+ unconfirmed, the first of them line \d+/,
      );
      assert(took < 8000, `gave up in ${took} ms, not waiting for the alarm`);
      const confirmed = Number(/(\d+) message\(s\) confirmed/.exec(r.stderr)![1]);
      assert(confirmed > 0, "some messages were confirmed before the alarm");
      await node.clearMemoryAlarm();
      // every message kmq said was confirmed is in the queue; nothing in it is foreign
      const all = await takeAll(node.url, q);
      tally(4000, all);
      const bodies = all.filter((b) => Number(b) <= confirmed);
      await account("8 produce, SIGTERM under a memory alarm", confirmed, bodies, started);
    } finally {
      await node.clearMemoryAlarm();
    }
  },
);

scenario(
  "9: a header the broker fails on (a NaN double in a $raw array): exit 6 at once, no resend loop",
  async (node) => {
    const q = unique("f9p");
    // A, length 9, then d + the 8 bytes of a NaN double: what kmq's -H refuses, sent raw
    const nan = Uint8Array.from([0x41, 0, 0, 0, 9, 0x64, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]);
    const base64 = btoa(String.fromCharCode(...nan));
    const record = JSON.stringify({ body: "x", properties: { headers: { bad: { $raw: base64 } } } });
    const p = new Running(["produce", "--jsonl", "-e", "", "-r", q, "-q", q], {
      env: { KMQ_URL: node.url },
      pipeStdin: true,
    });
    await p.feed(record + "\n");
    await p.endInput();
    const r = await finish(p, 20_000, "produce of a header the broker fails on");
    assertEquals(r.code, 6, r.stderr);
    assertMatch(
      r.stderr,
      /INTERNAL_ERROR.*see the broker's log; 0 message\(s\) confirmed; 1 unconfirmed, the first of them record 1/,
    );
    assert(!r.stderr.includes("reconnected"), `no resend: ${r.stderr}`);
  },
);
