/**
 * Fault scenarios for `kmq move`: the target broker (a private node) restarted mid-move, and kmq
 * killed -9 mid-move. The source is the shared broker. Every message ends up in the target at
 * least once, or is still in the source: none lost.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Running, TEST_URL, unique, withCleanup } from "../helpers.ts";
import { account, fill, finish, takeAll, waitFor } from "./scenarios.ts";
import { scenario } from "./scenarios.ts";

const N = 20_000;

scenario("14: the target broker restarted during a move of 20,000 messages", async (node) => {
  const [src, dst] = [unique("f14src"), unique("f14dst")];
  await withCleanup({ queues: [src] }, async () => {
    await fill(TEST_URL, src, N);
    const started = performance.now();
    const m = new Running(["move", "--from", src, "--to", dst, "--to-url", node.url]);
    await waitFor(async () => (await node.queueMessages(dst)) >= N / 10, 60_000, "a tenth moved");
    await node.restart();
    const r = await finish(m, 120_000, "move across the target's restart");
    assertEquals(r.code, 0, r.stderr);
    // a restart is seen as the broker's close or, when a write races it, as a reset
    assertMatch(r.stderr, /connection lost: .*reconnecting/);
    assertMatch(r.stderr, /reconnected/);
    const left = await takeAll(TEST_URL, src);
    assertEquals(left.length, 0, "the source is empty");
    await account("14 move, target restarted", N, await takeAll(node.url, dst), started);
  });
});

scenario("15: kmq killed (-9) during a move of 20,000 messages", async (node) => {
  const [src, dst] = [unique("f15src"), unique("f15dst")];
  await withCleanup({ queues: [src] }, async () => {
    await fill(TEST_URL, src, N);
    const started = performance.now();
    const m = new Running(["move", "--from", src, "--to", dst, "--to-url", node.url]);
    await waitFor(async () => (await node.queueMessages(dst)) >= N / 4, 60_000, "a quarter moved");
    m.kill("SIGKILL");
    assertEquals((await m.result()).code, 137, "killed by SIGKILL");
    // what is not in the target is still in the source
    const moved = await takeAll(node.url, dst);
    const left = await takeAll(TEST_URL, src);
    assert(
      moved.length > 0 && left.length > 0,
      `the kill landed mid-move: ${moved.length} moved, ${left.length} left`,
    );
    await account(
      "15 move, kmq killed -9",
      N,
      [...moved, ...left],
      started,
      `${moved.length} moved, ${left.length} left`,
    );
  });
});

scenario("16: the source broker restarted during a move of 20,000 messages", async (node) => {
  const [src, dst] = [unique("f16src"), unique("f16dst")];
  await withCleanup({ queues: [dst] }, async () => {
    await fill(node.url, src, N);
    await node.syncMetadata();
    const started = performance.now();
    const m = new Running(["move", "--from", src, "--to", dst, "--to-url", TEST_URL], {
      env: { KMQ_URL: node.url },
    });
    await waitFor(async () => (await node.queueMessages(src)) <= N * 0.9, 60_000, "a tenth moved");
    await node.restart();
    const r = await finish(m, 120_000, "move across the source's restart");
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /the source connection was lost .*: reconnecting/);
    assertEquals((await takeAll(node.url, src)).length, 0, "the source is empty");
    await account("16 move, source restarted", N, await takeAll(TEST_URL, dst), started);
  });
});

scenario("17: the source broker restarted during move -n 30,000 of 40,000 messages", async (node) => {
  const [src, dst] = [unique("f17src"), unique("f17dst")];
  const [total, count] = [40_000, 30_000];
  await withCleanup({ queues: [dst] }, async () => {
    await fill(node.url, src, total);
    await node.syncMetadata();
    const started = performance.now();
    const m = new Running(["move", "--from", src, "--to", dst, "--to-url", TEST_URL, "-n", `${count}`], {
      env: { KMQ_URL: node.url },
    });
    await waitFor(
      async () => (await node.queueMessages(src)) <= total - count / 10,
      60_000,
      "a tenth of -n moved",
    );
    await node.restart();
    const r = await finish(m, 120_000, "move -n across the source's restart");
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /the source connection was lost .*: reconnecting/);
    const left = await takeAll(node.url, src);
    const moved = await takeAll(TEST_URL, dst);
    const distinct = new Set(moved).size;
    const again = moved.length - distinct; // taken, not acked when the source went: redelivered, moved twice
    await account(
      "17 move -n, source restarted",
      total,
      [...moved, ...left],
      started,
      `${again} moved twice`,
    );
    assertEquals(left.length, total - distinct, "what is not in the target is in the source");
    // a redelivered message counts once (even when the stopping broker dropped its ack): -n took
    // exactly 30,000 messages out of the source, some of them moved twice
    assertEquals(distinct, count, `distinct messages moved (${again} redelivered and moved again)`);
  });
});

scenario(
  "18: Ctrl-C while the target is under a memory alarm: --stop-timeout bounds the wait",
  async (node) => {
    const [src, dst] = [unique("f18src"), unique("f18dst")];
    const total = 2_000;
    await withCleanup({ queues: [src] }, async () => {
      await fill(TEST_URL, src, total);
      const started = performance.now();
      await node.setMemoryAlarm();
      try {
        const m = new Running([
          "move",
          "--from",
          src,
          "--to",
          dst,
          "--to-url",
          node.url,
          "--stop-timeout",
          "2",
        ]);
        await m.waitForStderr("the broker blocked publishing", 30_000);
        const signalled = performance.now();
        m.kill("SIGINT");
        const r = await finish(m, 30_000, "move stopped under a memory alarm");
        assertEquals(r.code, 7, r.stderr);
        assertMatch(r.stderr, /stopped by SIGINT: no confirm within --stop-timeout 2 s/);
        const waited = performance.now() - signalled;
        assert(waited < 20_000, `ended ${Math.round(waited)} ms after the signal`);
      } finally {
        await node.clearMemoryAlarm();
      }
      // the unconfirmed went back to the source; some may have reached the target too (at-least-once)
      const moved = await takeAll(node.url, dst);
      const left = await takeAll(TEST_URL, src);
      await account(
        "18 move stopped, target blocked",
        total,
        [...moved, ...left],
        started,
        `${left.length} left`,
      );
      assert(left.length > 0, "the move did not finish before the signal");
    });
  },
);
