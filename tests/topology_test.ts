/**
 * Production topology on the shared broker: queue types and arguments (checked with
 * rabbitmqctl), adopting a queue that exists with other arguments, conflicts, streams read from
 * an offset, headers-exchange bindings, exchange arguments and consumer arguments.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, run, Running, sleep, unique, withCleanup } from "./helpers.ts";

interface Listed {
  name: string;
  type?: string;
  arguments: [string, string, unknown][];
}

async function list(what: "queues" | "exchanges", ...fields: string[]): Promise<Listed[]> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-q", `list_${what}`, ...fields, "--formatter", "json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

async function queue(name: string): Promise<{ type: string; args: Record<string, unknown> }> {
  const q = (await list("queues", "name", "type", "arguments")).find((q) => q.name === name);
  assert(q !== undefined, `queue ${name} exists`);
  return { type: q.type!, args: sorted(Object.fromEntries(q.arguments.map(([k, , v]) => [k, v]))) };
}

function sorted(table: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(table).sort(([a], [b]) => a < b ? -1 : 1));
}

Deno.test("topology: each queue type with its arguments, as rabbitmqctl lists them", async () => {
  const [c, qq, s] = [unique("kmq-classic"), unique("kmq-quorum"), unique("kmq-stream")];
  await withCleanup({ queues: [c, qq, s] }, async () => {
    const classic = await run([
      "declare",
      "-e",
      "",
      "-q",
      c,
      "--max-length",
      "2",
      "--overflow",
      "reject-publish",
      "--message-ttl",
      "60000",
      "--dead-letter-exchange",
      "dlx",
      "--dead-letter-routing-key",
      "dead",
      "--queue-arg",
      "x-max-priority:=10",
      "--queue-arg",
      "x-queue-mode=lazy",
      "--max-length-bytes",
      "1000000",
      "--single-active-consumer",
    ]);
    assertEquals(classic.code, 0, classic.stderr);
    assertEquals(await queue(c), {
      type: "classic",
      args: sorted({
        "x-max-length": 2,
        "x-overflow": "reject-publish",
        "x-message-ttl": 60000,
        "x-dead-letter-exchange": "dlx",
        "x-dead-letter-routing-key": "dead",
        "x-max-priority": 10,
        "x-queue-mode": "lazy",
        "x-max-length-bytes": 1000000,
        "x-single-active-consumer": true,
      }),
    });
    const quorum = await run([
      "declare",
      "-e",
      "",
      "-q",
      qq,
      "--queue-type",
      "quorum",
      "--delivery-limit",
      "3",
    ]);
    assertEquals(quorum.code, 0, quorum.stderr);
    assertEquals(await queue(qq), {
      type: "quorum",
      args: sorted({ "x-queue-type": "quorum", "x-delivery-limit": 3 }),
    });
    const stream = await run(["declare", "-e", "", "-q", s, "--queue-type", "stream", "--max-age", "7D"]);
    assertEquals(stream.code, 0, stream.stderr);
    assertEquals(await queue(s), {
      type: "stream",
      args: sorted({ "x-queue-type": "stream", "x-max-age": "7D" }),
    });
    // the overflow argument works: a third message is refused, and kmq says it was not delivered
    const p = await run(["produce", "-e", "", "-r", c, "a", "b", "c"]);
    assertFailure(p, 7, /1 of 3 messages not delivered: 1 nacked by the broker \(argument 3\)/);
    const kept = await run(["consume", "-e", "", "-q", c, "-n", "2"]);
    assertEquals([kept.code, kept.stdout], [0, "a\nb\n"], kept.stderr);
  });
});

Deno.test("topology: a queue that exists with other arguments is used as it is, unless options conflict", async () => {
  const q = unique("kmq-orders");
  await withCleanup({ queues: [q] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", q, "--queue-type", "quorum"])).code, 0);
    // what a new user types: no queue options at all
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "order 1"]);
    assertEquals(p.code, 0, p.stderr);
    const c = await run(["consume", "-q", q, "-n", "1", "-v"]);
    assertEquals([c.code, c.stdout], [0, "order 1\n"], c.stderr);
    assertMatch(c.stderr, /queue '.*' exists with x-queue-type .*quorum.*: using it as it is/);
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    // an explicit declaration that does not match: exit 6, the argument, both values, the flag
    const classic = await run(["declare", "-e", "", "-q", q, "--queue-type", "classic"]);
    assertEquals(classic.code, 6);
    assertMatch(
      classic.stderr,
      /^kmq: declaring queue '.*': it exists with x-queue-type 'quorum' where the command line asks for 'classic': declare it with --queue-type quorum to match/,
    );
    const plain = await run(["consume", "-q", q, "--single-active-consumer", "-n", "1"]);
    assertEquals(plain.code, 6);
    assertMatch(
      plain.stderr,
      // both differences at once: following the hint matches the queue in one step
      /exists without x-single-active-consumer where the command line asks for 'true', and with x-queue-type 'quorum' where it asks for none: declare it with --queue-type quorum and drop --single-active-consumer to match/,
    );
    assertEquals((await queue(q)).type, "quorum");
    const c2 = unique("kmq-classic");
    await withCleanup({ queues: [c2] }, async () => {
      assertEquals((await run(["declare", "-e", "", "-q", c2])).code, 0);
      const ttl = await run(["consume", "-q", c2, "--message-ttl", "1000", "-n", "1"]);
      assertEquals(ttl.code, 6);
      assertMatch(
        ttl.stderr,
        /exists without x-message-ttl where the command line asks for '1000': drop --message-ttl to match/,
      );
    });
    // every difference at once, and one hint that matches them all
    const c3 = unique("kmq-limits");
    await withCleanup({ queues: [c3] }, async () => {
      const made = await run(["declare", "-e", "", "-q", c3, "--max-length", "10", "--message-ttl", "1000"]);
      assertEquals(made.code, 0, made.stderr);
      const asked = await run([
        "declare",
        "-e",
        "",
        "-q",
        c3,
        "--max-length",
        "20",
        "--overflow",
        "reject-publish",
      ]);
      assertFailure(
        asked,
        6,
        /declaring queue '.*': it exists .*: declare it with .* and drop --overflow to match/,
      );
      for (
        const each of [
          /with x-max-length '10' where (the command line|it) asks for '20'/,
          /with x-message-ttl '1000' where (the command line|it) asks for none/,
          /without x-overflow where (the command line|it) asks for 'reject-publish'/,
          /declare it with (--max-length 10 --message-ttl 1000|--message-ttl 1000 --max-length 10) and/,
        ]
      ) assertMatch(asked.stderr, each);
      const hinted = await run([
        "declare",
        "-e",
        "",
        "-q",
        c3,
        "--max-length",
        "10",
        "--message-ttl",
        "1000",
      ]);
      assertEquals(hinted.code, 0, hinted.stderr);
    });
  });
});

Deno.test("topology: flags a queue type rules out, and bad arguments, are usage errors", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--queue-type", "quorum", "--exclusive"],
      /a quorum queue is always durable, shared and kept: drop --exclusive/,
    ],
    [["--queue-type", "stream", "--auto-delete"], /a stream queue .*drop --auto-delete/],
    [["--queue-type", "quorum", "--no-durable"], /drop --no-durable/],
    [["--queue-type", "lazy"], /'lazy' is invalid.*classic, quorum, stream/],
    [["--max-age", "1D"], /--max-age is for streams: add --queue-type stream/],
    [["--queue-type", "stream", "--max-age", "soon"], /--max-age 'soon' is not an age like 7D/],
    [["--delivery-limit", "3"], /--delivery-limit is for quorum queues/],
    [["--queue-arg", "x-max-length"], /--queue-arg 'x-max-length' is not key=value/],
    [["--queue-arg", "x-max-length:=ten"], /--queue-arg 'x-max-length': 'ten' is not valid JSON/],
    [["--overflow", "explode"], /'explode' is invalid/],
    [["--max-length", "-1"], /--max-length/],
  ];
  for (const [flags, pattern] of cases) {
    const r = await run(["declare", "-e", "", "-q", unique("kmq-never"), ...flags]);
    assertEquals([flags.join(" "), r.code], [flags.join(" "), 2], r.stderr);
    assertMatch(r.stderr, pattern);
  }
});

Deno.test("topology: a stream of 10,000 messages is read from an offset, again and again", async () => {
  const s = unique("kmq-stream");
  await withCleanup({ queues: [s] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", s, "--queue-type", "stream"])).code, 0);
    const N = 10_000;
    const lines = Array.from({ length: N }, (_, i) => `m${i}\n`).join("");
    assertEquals((await run(["produce", "-e", "", "-r", s, "--lines"], { stdin: lines })).code, 0);
    const first = await run(["consume", "-q", s, "--offset", "first", "-n", String(N)]);
    const again = await run(["consume", "-q", s, "--offset", "first", "-n", String(N)]);
    assertEquals([first.code, again.code], [0, 0], first.stderr + again.stderr);
    assertEquals(first.stdout, lines);
    assertEquals(again.stdout, lines, "reading a stream removes nothing");
    // -o json carries each message's offset; resuming at the last seen + 1 goes on from there
    const json = await run(["consume", "-q", s, "--offset", "first", "-n", "40", "-o", "json"]);
    const last = JSON.parse(json.stdout.trimEnd().split("\n").at(-1)!);
    assertEquals(last.properties.headers["x-stream-offset"], { $int64: "39" });
    const resumed = await run(["consume", "-q", s, "--offset", "40", "-n", String(N - 40)]);
    assertEquals(resumed.stdout, lines.split("\n").slice(40).join("\n"));
    // an interval back and a time before the first message select all; a time to come, none
    const hour = await run(["consume", "-q", s, "--offset", "1h", "-n", String(N)]);
    assertEquals(hour.stdout, lines);
    const since = new Date(Date.now() - 3600_000).toISOString();
    assertEquals((await run(["consume", "-q", s, "--offset", since, "-n", String(N)])).stdout, lines);
    const future = await run(["consume", "-q", s, "--offset", "2099-01-01T00:00:00Z", "--idle-timeout", "1"]);
    assertEquals([future.code, future.stdout], [0, ""], future.stderr);
    // next: only what arrives after the consumer started
    const bad = await run(["consume", "-q", s, "--offset", "yesterday"]);
    assertEquals(bad.code, 2);
    assertMatch(bad.stderr, /--offset 'yesterday' is not first, last, next/);
  });
});

Deno.test("topology: --offset on a queue that is not a stream says so", async () => {
  const q = unique("kmq-plain");
  await withCleanup({ queues: [q] }, async () => {
    const r = await run(["consume", "-e", "", "-q", q, "--offset", "first", "-n", "1"]);
    assertEquals(r.code, 6);
    assertMatch(r.stderr, /--offset reads streams only, and this queue is not one .*; drop --offset\n$/);
  });
});

Deno.test("topology: headers exchange bindings route on -H headers; exchange and consumer arguments", async () => {
  const [x, alt, q, qAlt] = [unique("kmq-hx"), unique("kmq-alt"), unique("kmq-hq"), unique("kmq-altq")];
  await withCleanup({ queues: [q, qAlt], exchanges: [x, alt] }, async () => {
    assertEquals((await run(["declare", "-e", alt, "-t", "fanout", "-q", qAlt])).code, 0);
    const binding = [
      "-e",
      x,
      "-t",
      "headers",
      "-q",
      q,
      "--bind-arg",
      "tenant=acme",
      "--bind-arg",
      "region=eu",
    ];
    const d = await run(["declare", ...binding, "--match", "any", "--alternate-exchange", alt]);
    assertEquals(d.code, 0, d.stderr);
    const ex = (await list("exchanges", "name", "arguments")).find((e) => e.name === x);
    assertEquals(ex?.arguments, [["alternate-exchange", "longstr", alt]]);
    for (const [header, body] of [["tenant=acme", "a"], ["region=eu", "b"], ["tenant=other", "c"]]) {
      const p = await run(["produce", "-e", x, "-t", "headers", "-H", header!, body!]);
      assertEquals(p.code, 0, p.stderr);
    }
    // the exchange exists with its alternate exchange: used as it is (no exchange options given)
    const consumer = new Running([
      "consume",
      ...binding,
      "--match",
      "any",
      "-n",
      "3",
      "--consumer-priority",
      "5",
    ]);
    // it takes a and b, then waits for a third: its arguments can be looked at meanwhile
    // the priority is the broker's to show: rabbitmqctl lists the consumer's arguments
    let args = "";
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && !args.includes("x-priority");) {
      const out = await new Deno.Command("rabbitmqctl", {
        args: ["-q", "list_consumers", "queue_name", "arguments"],
        stdout: "piped",
      }).output();
      args = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith(`${q}\t`)) ?? "";
      if (!args.includes("x-priority")) await sleep(100);
    }
    assertMatch(args, /\[\{"x-priority",5\}\]$/, "exactly the priority given, as the broker holds it");
    assertEquals((await run(["produce", "-e", x, "-t", "headers", "-H", "tenant=acme", "d"])).code, 0);
    const got = await consumer.result();
    assertEquals([got.code, got.stdout], [0, "a\nb\nd\n"], got.stderr);
    // the unmatched one went to the alternate exchange
    const rest = await run(["consume", "-e", "", "-q", qAlt, "-n", "1"]);
    assertEquals([rest.code, rest.stdout], [0, "c\n"], rest.stderr);
  });
});

Deno.test("topology: kmq declare --bind-exchange binds one exchange to another", async () => {
  const [src, dst, q] = [unique("kmq-src"), unique("kmq-dst"), unique("kmq-dq")];
  await withCleanup({ queues: [q], exchanges: [src, dst] }, async () => {
    assertEquals((await run(["declare", "-e", src, "-t", "topic", "-q", ""])).code, 0);
    const d = await run([
      "declare",
      "-e",
      dst,
      "-t",
      "fanout",
      "-q",
      q,
      "--bind-exchange",
      src,
      "-r",
      "order.*",
    ]);
    assertEquals(d.code, 0, d.stderr);
    for (const key of ["order.new", "user.new"]) {
      const p = await run(["produce", "-e", src, "-t", "topic", "-r", key, "--no-mandatory", key]);
      assertEquals(p.code, 0, p.stderr);
    }
    const got = await run(["consume", "-e", "", "-q", q, "--idle-timeout", "1"]);
    assertEquals([got.code, got.stdout], [0, "order.new\n"], got.stderr);
    const missing = await run([
      "declare",
      "-e",
      dst,
      "-t",
      "fanout",
      "-q",
      "",
      "--bind-exchange",
      unique("kmq-none"),
    ]);
    assertEquals(missing.code, 6);
    assertMatch(missing.stderr, /binding exchange '.*' to exchange 'kmq-none-.*' with key 'test': NOT_FOUND/);
  });
});

Deno.test("topology: a quorum queue's delivery limit dead-letters what the command kept requeueing, and kmq says so", async () => {
  const [q, dlq] = [unique("kmq-limited"), unique("kmq-dlq")];
  await withCleanup({ queues: [q, dlq] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", dlq])).code, 0);
    const flags = [
      "--queue-type",
      "quorum",
      "--delivery-limit",
      "2",
      "--dead-letter-exchange",
      "",
      "--dead-letter-routing-key",
      dlq,
    ];
    assertEquals((await run(["declare", "-e", "", "-q", q, ...flags])).code, 0);
    assertEquals((await run(["produce", "-e", "", "-r", q, "poison"])).code, 0);
    const c = await run([
      "consume",
      "-e",
      "",
      "-q",
      q,
      ...flags,
      "--idle-timeout",
      "2",
      "--",
      "sh",
      "-c",
      "exit 75",
    ]);
    assertMatch(c.stderr, /requeued \(delivered 2 times; a quorum queue's delivery limit/);
    assertMatch(
      c.stderr,
      /delivered 3 time\(s\), the queue's delivery limit \(2\): the broker dead-letters it/,
    );
    const dead = await run(["consume", "-e", "", "-q", dlq, "-n", "1"]);
    assertEquals([dead.code, dead.stdout], [0, "poison\n"], dead.stderr);
  });
});
