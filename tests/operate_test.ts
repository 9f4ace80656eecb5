/**
 * kmq peek, purge, delete and unbind against the shared broker: each does one thing, says what it
 * did, and refuses with exit 6 (or 2) and a hint where the broker would, or where nothing exists.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { run, unique, withCleanup } from "./helpers.ts";

async function depth(queue: string): Promise<string> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-q", "list_queues", "name", "messages_ready", "messages_unacknowledged"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith(`${queue}\t`)) ?? "absent";
}

const numbers = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join("");

Deno.test("peek: shows the first messages and leaves the queue's contents and order as they were", async () => {
  const q = unique("kmq-peek");
  await withCleanup({ queues: [q] }, async () => {
    assertEquals(
      (await run(["produce", "-e", "", "-r", q, "-q", q, "--lines"], { stdin: numbers(1, 20) })).code,
      0,
    );
    const p = await run(["peek", "-q", q, "-n", "5"]);
    assertEquals([p.code, p.stdout], [0, numbers(1, 5)], p.stderr);
    const again = await run(["peek", "-q", q, "-n", "3", "-o", "json"]);
    const records = again.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assertEquals(records.map((r) => [r.body, r.redelivered]), [["1", true], ["2", true], ["3", true]]);
    assertEquals(await depth(q), `${q}\t20\t0`);
    const all = await run(["consume", "-e", "", "-q", q, "-n", "20"]);
    assertEquals(all.stdout, numbers(1, 20), "the order is unchanged");
    const empty = await run(["peek", "-q", q]);
    assertEquals([empty.code, empty.stdout], [0, ""]);
  });
  const missing = await run(["peek", "-q", q]);
  assertEquals(missing.code, 6);
  assertMatch(
    missing.stderr,
    /^kmq: queue '.*' does not exist: nothing to peek at; check the name and the vhost\n$/,
  );
});

Deno.test("purge: empties a queue and says how many went; a missing queue is exit 6", async () => {
  const q = unique("kmq-purge");
  await withCleanup({ queues: [q] }, async () => {
    assertEquals(
      (await run(["produce", "-e", "", "-r", q, "-q", q, "--lines"], { stdin: numbers(1, 7) })).code,
      0,
    );
    const p = await run(["purge", q]);
    assertEquals([p.code, p.stdout], [0, `purged 7 message(s) from queue '${q}'\n`], p.stderr);
    assertEquals(await depth(q), `${q}\t0\t0`);
  });
  const missing = await run(["purge", q]);
  assertEquals([missing.code, missing.stdout], [6, ""]);
  assertMatch(
    missing.stderr,
    /^kmq: queue '.*' does not exist: nothing to purge; check the name and the vhost\n$/,
  );
});

Deno.test("delete: queues and exchanges, --if-empty and --if-unused refusing with a hint", async () => {
  const [q, x] = [unique("kmq-del"), unique("kmq-delx")];
  await withCleanup({ queues: [q], exchanges: [x] }, async () => {
    assertEquals((await run(["declare", "-e", x, "-q", q, "-r", "k"])).code, 0);
    assertEquals((await run(["produce", "-e", x, "-r", "k", "one", "two"])).code, 0);
    const notEmpty = await run(["delete", "queue", q, "--if-empty"]);
    assertEquals(notEmpty.code, 6);
    assertMatch(
      notEmpty.stderr,
      /deleting queue '.*': the broker refused: it is not empty: purge it first, or drop --if-empty/,
    );
    assertEquals(await depth(q), `${q}\t2\t0`);
    const used = await run(["delete", "exchange", x, "--if-unused"]);
    assertEquals(used.code, 6);
    assertMatch(used.stderr, /it has bindings: unbind them first, or drop --if-unused/);
    const dq = await run(["delete", "queue", q]);
    assertEquals([dq.code, dq.stdout], [0, `deleted queue '${q}' (2 message(s) with it)\n`], dq.stderr);
    assertEquals(await depth(q), "absent");
    const dx = await run(["delete", "exchange", x, "--if-unused"]);
    assertEquals([dx.code, dx.stdout], [0, `deleted exchange '${x}'\n`], dx.stderr);
    const gone = await run(["delete", "exchange", x]);
    assertEquals(gone.code, 6);
    assertMatch(gone.stderr, /exchange '.*' does not exist: nothing to delete/);
  });
  const own = await run(["delete", "exchange", "amq.direct"]);
  assertEquals(own.code, 2);
  assertMatch(own.stderr, /exchange 'amq.direct' is the broker's own: it cannot be deleted/);
});

Deno.test("unbind: the queue no longer gets the exchange's messages", async () => {
  const [q, x] = [unique("kmq-unb"), unique("kmq-unbx")];
  await withCleanup({ queues: [q], exchanges: [x] }, async () => {
    assertEquals((await run(["declare", "-e", x, "-q", q, "-r", "a", "-r", "b"])).code, 0);
    const u = await run(["unbind", "-e", x, "-q", q, "-r", "a"]);
    assertEquals([u.code, u.stdout], [0, `unbound queue '${q}' from exchange '${x}' (key 'a')\n`], u.stderr);
    assertEquals(
      (await run(["produce", "-e", x, "--no-declare", "-r", "a", "lost?"])).code,
      7,
      "unroutable now",
    );
    assertEquals((await run(["produce", "-e", x, "--no-declare", "-r", "b", "kept"])).code, 0);
    const got = await run(["consume", "-e", "", "-q", q, "--idle-timeout", "1"]);
    assertEquals(got.stdout, "kept\n");
    const missing = await run(["unbind", "-e", x, "-q", unique("kmq-none")]);
    assertEquals(missing.code, 6);
    assertMatch(missing.stderr, /queue '.*' does not exist: nothing to unbind/);
  });
});
