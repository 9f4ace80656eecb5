/** kmq move: nothing lost, every byte and typed header kept (checked through pika), usage errors. */
import { noPika, pika, PIKA_URL } from "./pika/pika.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { drain, run, Running, unique, withCleanup } from "./helpers.ts";
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { TakenCount } from "../lib/messages/taken-count.ts";
import { assertAllArrived, numbered } from "./tally.ts";
import { waitFor } from "./faults/scenarios.ts";

async function ready(queue: string): Promise<number> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-q", "list_queues", "name", "messages"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith(`${queue}\t`));
  return Number(line?.split("\t")[1] ?? -1);
}

Deno.test(
  { name: "move: 50,000 messages, what pika wrote arrives identical in pika", ignore: noPika },
  async () => {
    const [reference, source, target] = [unique("kmq-ref"), unique("kmq-msrc"), unique("kmq-mdst")];
    await withCleanup({ queues: [reference, source, target] }, async () => {
      await pika("publish", PIKA_URL, reference, source);
      const lines = Array.from({ length: 49_999 }, (_, i) => `${i}\n`).join("");
      const p = await run(
        ["produce", "-e", "", "-r", source, "--lines", "-H", "n:=1", "-H", "x-death=gone"],
        {
          stdin: lines,
        },
      );
      assertEquals(p.code, 0, p.stderr);
      const m = await run(["move", "--from", source, "--to", target]);
      assertEquals(m.code, 0, m.stderr);
      assertMatch(m.stderr, new RegExp(`moved 50000 message\\(s\\) from queue '${source}' to '${target}'`));
      assertEquals([await ready(source), await ready(target)], [0, 50_000]);
      assertEquals(
        JSON.parse(await pika("read", PIKA_URL, target)),
        JSON.parse(await pika("read", PIKA_URL, reference)),
      );
      // the rest, in order, with their headers; --drop-header and --set-header change only those
      const back = await run([
        "move",
        "--from",
        target,
        "--to",
        source,
        "-n",
        "2",
        "--drop-header",
        "x-death",
        "--set-header",
        "moved:=true",
      ]);
      assertEquals(back.code, 0, back.stderr);
      const two = await run(["consume", "-e", "", "-q", source, "-n", "2", "-o", "json"]);
      const records = two.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
      assertEquals(records.map((r) => [r.body, r.properties.headers]), [["0", { n: 1, moved: true }], ["1", {
        n: 1,
        moved: true,
      }]]);
    });
  },
);

Deno.test("move: bad targets are usage errors; a missing source or target exchange is exit 6", async () => {
  const q = unique("kmq-msrc");
  await withCleanup({ queues: [q] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    const cases: [string[], number, RegExp][] = [
      [["--from", q, "--to", q], 2, /--from and --to are the same queue/],
      [["--from", q], 2, /give the target: --to QUEUE or --to-exchange EXCHANGE/],
      [["--from", q, "--to", "a", "--to-exchange", "b"], 2, /one of them/],
      [["--from", q, "--to", "a", "-r", "k"], 2, /-r goes with --to-exchange/],
      [["--from", unique("kmq-none"), "--to", "a"], 6, /queue '.*' does not exist: nothing to move/],
      [
        ["--from", q, "--to-exchange", unique("kmq-nox")],
        6,
        /the target exchange '.*' does not exist: a move creates no exchange/,
      ],
    ];
    for (const [args, code, pattern] of cases) {
      const r = await run(["move", ...args]);
      assertEquals([args.join(" "), r.code], [args.join(" "), code], r.stderr);
      assertMatch(r.stderr, pattern);
    }
  });
});

Deno.test("move: Ctrl-C to the process group mid-move and --rate: exit 130, every message in one queue or the other", async () => {
  const [source, target] = [unique("kmq-mcsrc"), unique("kmq-mcdst")];
  await withCleanup({ queues: [source, target] }, async (client) => {
    const total = 5_000;
    assertEquals(
      (await run(["produce", "-e", "", "-r", source, "-q", source, "--lines"], { stdin: numbered(1, total) }))
        .code,
      0,
    );
    // --rate 500: the move would take 10 s; the signal comes once the first messages arrived
    const move = new Running(["move", "--from", source, "--to", target, "--rate", "500"], { setsid: true });
    await waitFor(async () => (await ready(target)) > 0, 30_000, "the first moved messages");
    await move.killGroup("SIGINT");
    const r = await move.result();
    assertEquals(r.code, 130, r.stderr);
    const said = /stopped by SIGINT: moved (\d+) message\(s\); the rest stay in queue/.exec(r.stderr);
    assert(said !== null, r.stderr);
    const moved = (await drain(client, target)).map((m) => m.bodyToString() ?? "");
    const left = (await drain(client, source)).map((m) => m.bodyToString() ?? "");
    assert(
      moved.length > 0 && left.length > 0,
      `stopped mid-move: ${moved.length} moved, ${left.length} left`,
    );
    assertEquals(moved.length, Number(said[1]), "the count said is the count moved");
    assertAllArrived(total, [...moved, ...left], 0); // nothing lost, nothing twice
  });
});

Deno.test("move -n's count: a redelivered recent message counts once, equal messages once each", () => {
  const message = (body: string, redelivered = false, messageId?: string) =>
    ({
      body: new TextEncoder().encode(body),
      redelivered,
      properties: { messageId },
    }) as unknown as AMQPMessage;
  const taken = new TakenCount(3);
  for (const body of ["a", "a", "b"]) taken.take(message(body));
  assertEquals(taken.count, 3);
  // after a reconnect: the three come again, redelivered
  taken.reconnected();
  for (const body of ["a", "a", "b"]) taken.take(message(body, true));
  assertEquals(taken.count, 3, "nothing new was taken");
  taken.take(message("a", true)); // a third 'a' was never taken here (another consumer's)
  taken.take(message("b", true, "other-id")); // same body, another message
  taken.take(message("c"));
  assertEquals(taken.count, 6);
  for (const body of ["d", "e", "f"]) taken.take(message(body));
  taken.reconnected();
  taken.take(message("c", true)); // taken 4 messages ago: beyond what is kept (3), counted again
  assertEquals(taken.count, 10);
  // equal messages redelivered for another reason (a peek), with no connection lost: each counts
  const fresh = new TakenCount(10);
  for (let i = 0; i < 5; i++) fresh.take(message("same", true));
  assertEquals(fresh.count, 5);
});
