/** What a new user tripped over on the first day (issue "Daily use: no surprises"). */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { kmqCommand, publishRaw, run, Running, sleep, TEST_URL, unique, withCleanup } from "./helpers.ts";
import { freePort } from "./private_broker.ts";
import { CuttableProxy } from "./proxy.ts";

Deno.test("consume -q NAME with neither -e nor -r reads the queue and binds nothing", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(q, { durable: true });
    await publishRaw(client, "", q, "waiting");
    const r = await run(["-v", "consume", "-q", q, "-n", "1"]);
    assertEquals([r.code, r.stdout], [0, "waiting\n"], r.stderr);
    assert(!/binding|test_exchange/.test(r.stderr), `no binding, no exchange: ${r.stderr}`);
    const out = await new Deno.Command("rabbitmqctl", {
      args: ["-q", "list_bindings", "source_name", "destination_name"],
      stdout: "piped",
    }).output();
    const bindings = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.endsWith(`\t${q}`));
    assertEquals(bindings.map((l) => l.split("\t")[0]), [""], "only the default exchange's implicit binding");
  });
});

/** The exchanges bound to `queue` (the default exchange's implicit binding is '""'). */
async function sourcesOf(queue: string): Promise<string[]> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-q", "list_bindings", "source_name", "destination_name"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.endsWith(`\t${queue}`))
    .map((l) => l.split("\t")[0] ?? "");
}

Deno.test("produce -q NAME alone sends into NAME and binds nothing; --jsonl records too", async () => {
  const [q, tap] = [unique("kmq-into"), unique("kmq-tap")];
  await withCleanup({ queues: [q, tap] }, async (client) => {
    // a tap on the tutorial's exchange shows whether anything went there
    assertEquals((await run(["declare", "-q", tap, "-e", "test_exchange", "-r", "test"])).code, 0);
    const p = await run(["-v", "produce", "-q", q, "into the queue"]);
    assertEquals(p.code, 0, p.stderr);
    assertEquals(await sourcesOf(q), [""], "only the default exchange's implicit binding");
    // naming the default exchange says the same: the queue's name is the routing key
    const named = await run(["produce", "-e", "", "-q", q, "through -e ''"]);
    assertEquals(named.code, 0, named.stderr);
    const records = [
      { exchange: "elsewhere", routing_key: "other", body: "replayed", properties: {} },
    ].map((r) => JSON.stringify(r) + "\n").join("");
    const replay = await run(["produce", "--jsonl", "-q", q], { stdin: records });
    assertEquals(replay.code, 0, replay.stderr);
    // the tutorial's default produce no longer reaches NAME
    assertEquals(
      (await run(["produce", "--no-declare", "-e", "test_exchange", "-r", "test", "tutorial"])).code,
      0,
    );
    const got = await run(["consume", "-q", q, "--idle-timeout", "1"]);
    assertEquals(got.stdout, "into the queue\nthrough -e ''\nreplayed\n", got.stderr);
    const tapped = await run(["consume", "-q", tap, "--idle-timeout", "1"]);
    assertEquals(tapped.stdout, "tutorial\n", "only the tutorial's own message went to test_exchange");
    await client.channel().then((ch) => ch.queuePurge("queue").catch(() => {}));
  });
});

/** Runs kmq under a pseudo-terminal (script(1)), so its stdout and stderr are a TTY. */
async function onTerminal(args: string[], setup = "", term = "xterm"): Promise<string> {
  const [cmd, pre] = kmqCommand();
  const line = setup + [cmd, ...pre, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const out = await new Deno.Command("script", {
    args: ["-qec", line, "/dev/null"],
    env: { KMQ_URL: TEST_URL, NO_COLOR: "1", TERM: term },
    stdin: "null",
    stdout: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stdout));
  return new TextDecoder().decode(out.stdout);
}

Deno.test("on a terminal a body cannot clear the screen or retitle the window; piped, it is byte-exact", async () => {
  const q = unique("kmq-q");
  const hostile = "before\x1b[2J\x1b[31mred\x1b]0;pwned\x07\r\u009bafter\ttab";
  await withCleanup({ queues: [q] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(q, { durable: true });
    await publishRaw(client, "", q, hostile);
    await publishRaw(client, "", q, hostile);
    const shown = await onTerminal(["consume", "-e", "", "-q", q, "-n", "1"]);
    assert(
      !shown.includes("\x1b") && !shown.includes("\x07") && !shown.includes("\u009b"),
      JSON.stringify(shown),
    );
    assertMatch(shown, /before\\x1b\[2J\\x1b\[31mred\\x1b\]0;pwned\\x07\\x0d\\x9bafter\ttab/);
    const json = await onTerminal(["consume", "-e", "", "-q", q, "-n", "1", "-o", "json"]);
    assert(!json.includes("\x1b") && !json.includes("\u009b"), JSON.stringify(json));
    // stderr shares the terminal: its "waiting on queue" line comes first
    const record = json.split(/\r?\n/).find((l) => l.startsWith("{"))!;
    assertEquals(JSON.parse(record).body, hostile, "still valid JSON with the same body");
    await publishRaw(client, "", q, hostile);
    const piped = await run(["consume", "-e", "", "-q", q, "-n", "1"]);
    assertEquals(piped.stdout, hostile + "\n");
  });
});

Deno.test("a body that is not UTF-8 is labelled as Kombu labels bytes; -C/-E still win", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async () => {
    const bytes = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 0xff, 0xfe, 0x00, 0x01]);
    const p = await run(["-v", "produce", "-e", "", "-r", q, "-q", q], { stdin: bytes });
    assertEquals(p.code, 0, p.stderr);
    assertMatch(p.stderr, /stdin is not UTF-8 text: sent as application\/data, binary/);
    const text = await run(["produce", "-e", "", "-r", q, "plain text"]);
    const forced = await run(["produce", "-e", "", "-r", q, "-C", "application/x-elf"], { stdin: bytes });
    assertEquals([text.code, forced.code], [0, 0], text.stderr + forced.stderr);
    const c = await run(["consume", "-e", "", "-q", q, "-n", "3", "-o", "json"]);
    const props = c.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).properties);
    assertEquals(props.map((p) => [p.content_type, p.content_encoding]), [
      ["application/data", "binary"],
      ["text/plain", "utf-8"],
      ["application/x-elf", "utf-8"],
    ]);
  });
});

Deno.test("produce --timestamp and --user-id set their properties", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async () => {
    const user = new URL(TEST_URL).username || "guest";
    const before = Math.floor(Date.now() / 1000);
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--timestamp", "--user-id", user, "now"]);
    const fixed = await run(["produce", "-e", "", "-r", q, "--timestamp", "1700000000", "then"]);
    assertEquals([p.code, fixed.code], [0, 0], p.stderr + fixed.stderr);
    const c = await run(["consume", "-e", "", "-q", q, "-n", "2", "-o", "json"]);
    const [now, then] = c.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).properties);
    assert(now.timestamp >= before && now.timestamp <= before + 60, `now: ${now.timestamp}`);
    assertEquals(now.user_id, user);
    assertEquals(then.timestamp, 1700000000);
  });
});

Deno.test("on a terminal: progress fits a 36-column pane, no cursor control when TERM=dumb; consume says what it waits on", async () => {
  const [q, q2] = [unique("kmq-q"), unique("kmq-q2")];
  await withCleanup({ queues: [q, q2] }, async () => {
    const args = ["produce", "-e", "", "-r", q, "-q", q, "--repeat", "3000", "--rate", "2000", "x"];
    const narrow = await onTerminal(args, "stty cols 36; ");
    const updates = narrow.split("\r").map((u) => u.replaceAll("\x1b[K", "").replace(/\n$/, ""));
    assert(updates.some((u) => u.startsWith("kmq: sent")), JSON.stringify(narrow));
    for (const u of updates.filter((x) => x.startsWith("kmq: sent"))) {
      // three columns stay free for an echoed ^C, and the narrow wording keeps its unit
      assert(u.length <= 33, `too wide: ${u}`);
      assertMatch(u, /\/s\)?$/);
    }
    const dumb = await onTerminal(args, "", "dumb");
    assert(!dumb.includes("\x1b["), `no cursor control: ${JSON.stringify(dumb)}`);
    assertMatch(dumb, /published 3000, confirmed 3000/);
    const waiting = await onTerminal(["consume", "-q", q, "-n", "1"]);
    assertMatch(waiting, new RegExp(`waiting on queue '${q}'; Ctrl-C to stop`));
    // move draws the same line: how many moved, at what rate
    const moving = await onTerminal(["move", "--from", q, "--to", q2, "--rate", "2000"], "stty cols 36; ");
    const moves = moving.split("\r").map((u) => u.replaceAll("\x1b[K", "").replace(/\n$/, ""));
    assert(moves.some((u) => /^kmq: moved \d+, \d+\/s$/.test(u)), JSON.stringify(moving));
    for (const u of moves.filter((x) => x.startsWith("kmq: moved") && !x.includes("from queue"))) {
      assert(u.length <= 33, `too wide: ${u}`);
      assertMatch(u, /\/s\)?$/);
    }
    // one message on a terminal: one short line saying where it went
    const single = await onTerminal(["produce", "-q", q, "Hello World!"]);
    assertMatch(single, new RegExp(`kmq: published 1 message to queue '${q}', confirmed`));
    assert(!/returned|nacked/.test(single), single);
    assertMatch(moving, /moved 5999 message\(s\) from queue/);
  });
});

Deno.test("consume waits for a broker that is down at start-up (as after a drop), within --retry-timeout", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const ch = await client.channel();
    await ch.queueDeclare(q, { durable: true });
    await publishRaw(client, "", q, "worth the wait");
    const port = freePort();
    const url = `amqp://guest:guest@127.0.0.1:${port}/`;
    const gaveUp = await run(["consume", "-e", "", "-q", q, "--retry-timeout", "1"], {
      env: { KMQ_URL: url },
    });
    assertEquals(gaveUp.code, 4, gaveUp.stderr);
    assertMatch(gaveUp.stderr, /ECONNREFUSED.*; retrying for up to --retry-timeout 1 s/);
    assertMatch(gaveUp.stderr, /did not come back within --retry-timeout 1 s/);
    const c = new Running(["consume", "-e", "", "-q", q, "-n", "1"], { env: { KMQ_URL: url } });
    await c.waitForStderr("retrying until it answers");
    await sleep(500);
    const broker = new URL(TEST_URL);
    const proxy = new CuttableProxy({ hostname: broker.hostname, port: Number(broker.port || 5672) }, port);
    try {
      const r = await c.result();
      assertEquals([r.code, r.stdout], [0, "worth the wait\n"], r.stderr);
    } finally {
      await proxy.close();
    }
  });
});
