/**
 * kmq export and kmq import on the shared broker (no management API there: the queues are named
 * with --queue and learned over AMQP): the source keeps its messages and order, a kill -9 of an
 * import at three points loses nothing and duplicates no more than it reports, a damaged file
 * publishes nothing, and the refusals name their fix.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, queueDepth, run, Running, sleep, unique, withCleanup } from "./helpers.ts";
import { linesOf, numbered, tally } from "./tally.ts";

async function tmpFile(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kmq-export-" });
  return `${dir}/export.kmq`;
}

async function fill(queue: string, n: number, extra: string[] = []): Promise<void> {
  const r = await run(["produce", "-e", "", "-r", queue, "-q", queue, "--lines", ...extra], {
    stdin: numbered(1, n),
  });
  assertEquals(r.code, 0, r.stderr);
}

/** Every body of the queue, in order, taken off it. */
async function bodies(queue: string): Promise<string[]> {
  const r = await run(["consume", "-q", queue, "--no-declare", "--exit-at-end"]);
  assertEquals(r.code, 0, r.stderr);
  return linesOf(r.stdout);
}

Deno.test("export leaves a classic and a quorum queue as they were (order, count, no delivery counted); import copies them in order", async () => {
  const [classic, quorum, copyC, copyQ] = [
    unique("kmq-exc"),
    unique("kmq-exq"),
    unique("kmq-exc2"),
    unique("kmq-exq2"),
  ];
  const file = await tmpFile();
  await withCleanup({ queues: [classic, quorum, copyC, copyQ] }, async () => {
    await fill(classic, 3000);
    await fill(quorum, 3000, ["--queue-type", "quorum", "--delivery-limit", "2"]);
    // three exports of a quorum queue whose delivery limit is 2: a requeue each time would drop them
    for (let i = 0; i < 3; i++) {
      const r = await run(["export", "--force", "-q", classic, "-q", quorum, file]);
      assertEquals(r.code, 0, r.stderr);
      assertMatch(
        r.stderr,
        new RegExp(`queue '${classic}' \\(classic\\): 3000 message\\(s\\).*put back in order`),
      );
      assertMatch(
        r.stderr,
        new RegExp(`queue '${quorum}' \\(quorum\\): 3000 message\\(s\\).*sent round the queue once`),
      );
    }
    const imported = await run([
      "import",
      "--rename",
      `${classic}=${copyC}`,
      "--rename",
      `${quorum}=${copyQ}`,
      file,
    ]);
    assertEquals(imported.code, 0, imported.stderr);
    assertMatch(imported.stderr, /imported 6000 message\(s\) into 2 queue\(s\)/);
    // no message of the quorum queue was given back: the broker counted no delivery
    const dump = await run(["consume", "-q", quorum, "--no-declare", "--exit-at-end", "-o", "json"]);
    assertEquals(dump.code, 0, dump.stderr);
    const records = linesOf(dump.stdout).map((l) => JSON.parse(l));
    assertEquals(records.filter((r) => r.properties.headers?.["x-delivery-count"] !== undefined).length, 0);
    assertEquals(records.map((r) => r.body), linesOf(numbered(1, 3000)), "the quorum queue's order");
    const want = linesOf(numbered(1, 3000));
    for (const q of [classic, copyC, copyQ]) assertEquals(await bodies(q), want, q);
  });
});

Deno.test("a stream is exported from its first offset and stays; --drain empties a queue into a synced file", async () => {
  const [stream, q, copyS, copyQ] = [
    unique("kmq-exs"),
    unique("kmq-exd"),
    unique("kmq-exs2"),
    unique("kmq-exd2"),
  ];
  const file = await tmpFile();
  await withCleanup({ queues: [stream, q, copyS, copyQ] }, async (client) => {
    await fill(stream, 2000, ["--queue-type", "stream"]);
    await fill(q, 2000);
    const r = await run(["export", "--drain", "-q", stream, "-q", q, file]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /taken off the queue \(--drain\)/);
    assertEquals(await queueDepth(client, q), 0, "--drain took the messages");
    const imported = await run([
      "import",
      "--rename",
      `${stream}=${copyS}`,
      "--rename",
      `${q}=${copyQ}`,
      file,
    ]);
    assertEquals(imported.code, 0, imported.stderr);
    assertEquals(await bodies(copyQ), linesOf(numbered(1, 2000)));
    for (const s of [stream, copyS]) {
      const read = await run(["consume", "-q", s, "--no-declare", "--offset", "first", "--exit-at-end"]);
      assertEquals(read.code, 0, read.stderr);
      assertEquals(linesOf(read.stdout), linesOf(numbered(1, 2000)), s);
    }
  });
});

Deno.test("import killed -9 at three points, then run again: nothing lost, duplicates within what it reports", async () => {
  const [source, target] = [unique("kmq-exk"), unique("kmq-exk2")];
  const n = 40_000;
  const file = await tmpFile();
  await withCleanup({ queues: [source, target] }, async (client) => {
    await fill(source, n);
    const e = await run(["export", "-q", source, file]);
    assertEquals(e.code, 0, e.stderr);
    const args = ["import", "--rename", `${source}=${target}`, file];
    const killedAt: number[] = [];
    for (const point of [0.15, 0.45, 0.75]) {
      const running = new Running(args);
      const deadline = Date.now() + 60_000;
      while (Math.max(0, await queueDepth(client, target)) < n * point && Date.now() < deadline) {
        await sleep(5);
      }
      running.kill("SIGKILL");
      const r = await running.result();
      assertEquals(r.code, 137, `killed mid-import: ${r.stderr}`);
      killedAt.push(await queueDepth(client, target));
    }
    assert(
      killedAt.every((d, i) => d < n && (i === 0 || d > killedAt[i - 1]!)),
      `kills landed mid-import: ${killedAt}`,
    );
    const last = await run(args, { timeoutMs: 120_000 });
    assertEquals(last.code, 0, last.stderr);
    assertMatch(last.stderr, /resuming the import/);
    const reported = /duplicates: (?:at most )?(\d+)/.exec(last.stderr);
    assert(reported, `the resume says how many could be duplicates: ${last.stderr}`);
    const got = await bodies(target);
    const t = tally(n, got);
    assertEquals(t.lost, 0, "nothing lost");
    assert(
      t.duplicated <= Number(reported[1]),
      `${t.duplicated} duplicates, reported at most ${reported[1]}`,
    );
    // in order, each duplicate aside
    const firsts = got.filter((b, i) => got.indexOf(b) === i);
    assertEquals(firsts, linesOf(numbered(1, n)));
    const again = await run(args);
    assertEquals(again.code, 0, again.stderr);
    assertMatch(again.stderr, /imported into .* already/);
    assertEquals(await queueDepth(client, target), 0, "a finished import is not repeated");
  });
});

/** Rewrites one line of the file (0-based) with `change`. */
async function damage(file: string, to: string, change: (lines: string[]) => void): Promise<void> {
  const lines = (await Deno.readTextFile(file)).split("\n");
  change(lines);
  await Deno.writeTextFile(to, lines.join("\n"));
}

Deno.test("a damaged, cut or foreign file is exit 3 naming the part, and nothing is declared or published", async () => {
  const [a, b, target] = [unique("kmq-exa"), unique("kmq-exb"), unique("kmq-ext")];
  const file = await tmpFile();
  await withCleanup({ queues: [a, b, target] }, async (client) => {
    await fill(a, 50);
    await fill(b, 50);
    const e = await run(["export", "-q", a, "-q", b, file]);
    assertEquals(e.code, 0, e.stderr);
    const checked = await run(["import", "--check", file], {
      noUrl: true,
      env: { KMQ_URL: "amqp://127.0.0.1:1/" },
    });
    assertEquals(checked.code, 0, checked.stderr);
    assertMatch(
      checked.stdout,
      /every part checks\ndefinitions: 0 exchange\(s\), 2 queue\(s\), 0 binding\(s\), 0 policies\n/,
    );
    assertMatch(
      checked.stdout,
      new RegExp(`queue '${a}' \\(classic\\): 50 message\\(s\\)\nqueue '${b}' \\(classic\\): 50`),
    );
    const bad = `${file}.bad`;
    const cases: [string, (l: string[]) => void, RegExp][] = [
      [
        "a body changed",
        (l) => (l[60] = l[60]!.replace(/"body":"\d/, '"body":"x')),
        /part 3 \(queue '.*'\) fails its SHA-256/,
      ],
      ["a record removed", (l) => l.splice(10, 1), /part 2 \(queue '.*'\) holds 49 lines/],
      [
        "cut mid-line",
        (l) => (l.splice(70), l.push(l.pop()!.slice(0, 20))),
        /part 3 \(queue '.*'\) is cut off at line 70: the file is truncated/,
      ],
      [
        "cut after a line",
        (l) => (l.splice(70), l.push("")),
        /part 3 \(queue '.*'\) has no end line: the file is truncated/,
      ],
      ["no last line", (l) => l.splice(l.length - 2, 1), /has no last line: the file is truncated/],
      [
        "definitions changed",
        (l) => (l[2] = l[2]!.replace('"durable":true', '"durable":1234')),
        /part 1 \(definitions\) fails/,
      ],
      ["not an export", (l) => l.splice(0, 1), /not a kmq export/],
    ];
    for (const [what, change, pattern] of cases) {
      await damage(file, bad, change);
      const r = await run([
        "import",
        "--rename",
        `${a}=${target}`,
        "--rename",
        `${b}=${target}`,
        "--progress",
        `${bad}.p`,
        bad,
      ]);
      assertFailure(r, 3, pattern);
      assertFailure(await run(["import", "--check", bad]), 3, pattern);
      assertEquals(await queueDepth(client, target), -1, `${what}: nothing declared`);
    }
  });
});

Deno.test("import refuses a queue that holds messages (--append adds), another export's progress, and --queue-type quorum on what cannot be one", async () => {
  const [src, prio, auto, target] = [
    unique("kmq-exr"),
    unique("kmq-exp"),
    unique("kmq-exa"),
    unique("kmq-ext"),
  ];
  const file = await tmpFile();
  await withCleanup({ queues: [src, prio, auto, target, `${prio}-q`] }, async (client) => {
    await fill(src, 10);
    await fill(target, 5);
    await fill(prio, 3, ["--queue-arg", "x-max-priority:=5"]);
    const ch = await client.channel();
    await ch.queueDeclare(auto, { durable: true, autoDelete: true });
    const e = await run(["export", "-q", src, "-q", prio, "-q", auto, file]);
    assertEquals(e.code, 0, e.stderr);
    const into = ["--rename", `${src}=${target}`, "--queue", src];
    assertFailure(await run(["import", ...into, file]), 2, /already holds 5 message\(s\).*--append/);
    const appended = await run(["import", "--append", ...into, file]);
    assertEquals(appended.code, 0, appended.stderr);
    assertEquals(await queueDepth(client, target), 15);
    // the same progress file for another export
    const other = `${file}.other`;
    await Deno.writeTextFile(
      other,
      (await Deno.readTextFile(file)).replace(/"created":"[^"]*"/, '"created":"x"'),
    );
    assertFailure(
      await run(["import", "--progress", `${file}.import-progress`, ...into, other]),
      2,
      /belongs to another export: remove it/,
    );
    assertFailure(
      await run(["import", "--queue-type", "quorum", "--queue", auto, "--rename", `${auto}=${auto}-q`, file]),
      2,
      new RegExp(`queue '${auto}' is auto-delete: a quorum queue cannot be`),
    );
    const migrated = await run([
      "import",
      "--queue-type",
      "quorum",
      "--queue",
      prio,
      "--rename",
      `${prio}=${prio}-q`,
      file,
    ]);
    assertEquals(migrated.code, 0, migrated.stderr);
    assertMatch(migrated.stderr, /becomes a quorum queue without x-max-priority/);
    const info = await run([
      "consume",
      "-q",
      `${prio}-q`,
      "--no-declare",
      "--exit-at-end",
      "--accept-delivery-count",
    ]);
    assertEquals(linesOf(info.stdout), ["1", "2", "3"], info.stderr);
    assertFailure(await run(["import", "--rename", "x", file]), 2, /--rename 'x' is not OLD=NEW/);
    assertFailure(await run(["export", "-q", src, file]), 2, /exists: choose another name, or give --force/);
  });
});

Deno.test("Ctrl-C: an export puts back what it held and writes no file; an import records what was confirmed and carries on", async () => {
  const [source, target] = [unique("kmq-exi"), unique("kmq-exi2")];
  const n = 60_000;
  const file = await tmpFile();
  await withCleanup({ queues: [source, target] }, async (client) => {
    await fill(source, n);
    const exporting = new Running(["export", "-q", source, file], { setsid: true });
    const deadline = Date.now() + 30_000;
    // mid-export: part of the messages written (the file grows by 1 MiB batches)
    const size = () => Deno.stat(`${file}.partial`).then((s) => s.size, () => 0);
    while (await size() < 2 * 1024 * 1024 && Date.now() < deadline) await sleep(1);
    await exporting.killGroup("SIGINT");
    const stopped = await exporting.result();
    assertEquals(stopped.code, 130, stopped.stderr);
    assertMatch(
      stopped.stderr,
      /stopped by SIGINT while exporting queue .*: no file written; the messages taken went back/,
    );
    assertEquals(await Deno.stat(file).then(() => true, () => false), false, "no file written");
    assertEquals(await Deno.stat(`${file}.partial`).then(() => true, () => false), false, "no partial left");
    assertEquals(await queueDepth(client, source), n, "the source holds all its messages again");
    const e = await run(["export", "--force", "-q", source, file]);
    assertEquals(e.code, 0, e.stderr);
    const importing = new Running(["import", "--rename", `${source}=${target}`, file], { setsid: true });
    const until = Date.now() + 60_000;
    while (Math.max(0, await queueDepth(client, target)) < n / 3 && Date.now() < until) await sleep(5);
    await importing.killGroup("SIGINT");
    const interrupted = await importing.result();
    assertEquals(interrupted.code, 130, interrupted.stderr);
    assertMatch(interrupted.stderr, /stopped by SIGINT: .* run the same command again to carry on/);
    const rest = await run(["import", "--rename", `${source}=${target}`, file], { timeoutMs: 120_000 });
    assertEquals(rest.code, 0, rest.stderr);
    assertMatch(rest.stderr, /duplicates: 0/);
    assertEquals(await bodies(target), linesOf(numbered(1, n)), "all, once, in order");
    assertEquals(await bodies(source), linesOf(numbered(1, n)), "the source as it was");
  });
});

Deno.test("export --drain killed -9: every message is in the queue or in the file, none lost", async () => {
  const q = unique("kmq-exdk");
  const n = 50_000;
  const file = await tmpFile();
  await withCleanup({ queues: [q] }, async (client) => {
    await fill(q, n);
    const draining = new Running(["export", "--drain", "-q", q, file]);
    const deadline = Date.now() + 30_000;
    while (await queueDepth(client, q) > n / 2 && Date.now() < deadline) await sleep(2);
    draining.kill("SIGKILL");
    assertEquals((await draining.result()).code, 137);
    const text = await Deno.readTextFile(`${file}.partial`);
    const written = linesOf(text).filter((l) => l.startsWith('{"exchange"')).map((l) =>
      JSON.parse(l).body as string
    );
    const left = await bodies(q);
    assert(
      written.length > 0 && left.length > 0,
      `killed mid-drain: ${written.length} written, ${left.length} left`,
    );
    const t = tally(n, [...written, ...left]);
    assertEquals(t.lost, 0, "nothing lost");
  });
});

Deno.test("import: a queue of another type on the target is exit 6 naming it; a name AMQP cannot carry is exit 3", async () => {
  const [q, file] = [unique("kmq-exc"), await tmpFile()];
  await withCleanup({ queues: [q, `${q}-qq`] }, async (client) => {
    await fill(q, 3);
    const e = await run(["export", "-q", q, file]);
    assertEquals(e.code, 0, e.stderr);
    const ch = await client.channel();
    await ch.queueDeclare(`${q}-qq`, { durable: true }, { "x-queue-type": "quorum" });
    assertFailure(
      await run(["import", "--rename", `${q}=${q}-qq`, file]),
      6,
      new RegExp(`queue '${q}-qq' could not be declared on the target: .*x-queue-type.*--rename it`),
    );
    const long = `${file}.long`;
    const text = await Deno.readTextFile(file);
    // the same length everywhere, so only the name is wrong: rewrite the definitions part as kmq would
    const lines = text.split("\n");
    const defs = JSON.parse(lines[2]!);
    defs.queues[0].name = "x".repeat(300);
    lines[2] = JSON.stringify(defs);
    const bytes = new TextEncoder().encode(lines[2] + "\n");
    const sum = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    lines[3] = JSON.stringify({ part: "definitions", end: true, lines: 1, bytes: bytes.length, sha256: sum });
    await Deno.writeTextFile(long, lines.join("\n"));
    assertFailure(await run(["import", "--no-messages", long]), 3, /longer than AMQP's 255 bytes/);
  });
});

Deno.test("export of a single-active-consumer queue another consumer holds ends with exit 6 naming why, the messages untouched", async () => {
  const [q, file] = [unique("kmq-exsac"), await tmpFile()];
  await withCleanup({ queues: [q] }, async (client) => {
    await fill(q, 20, ["--single-active-consumer"]);
    const ch = await client.channel();
    await ch.basicQos(1);
    await ch.basicConsume(q, { noAck: false }, () => {}); // the active consumer, holding one unacked
    const r = await run(["export", "-q", q, file], { timeoutMs: 60_000 });
    assertEquals(r.code, 6, r.stderr);
    assertMatch(r.stderr, /delivered nothing to kmq for 10 s though it holds ready messages/);
    await ch.close();
    assertEquals(await queueDepth(client, q), 20);
  });
});
