/**
 * What users do by accident and attackers on purpose: a reader that goes away, a queue deleted
 * under the consumer, headers nested thousands deep, bytes that are not UTF-8 on the command line,
 * huge handler output, passwords full of URL syntax. Each ends in its documented exit code with
 * nothing lost and no secret shown.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { RawField } from "../lib/messages/fields.ts";
import { ByteWriter, encodeProperties, writePublish } from "../lib/amqp/wire.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  assertFailure,
  drain,
  kmqCommand,
  queueDepth,
  run,
  startConsumer,
  TEST_URL,
  unique,
  withCleanup,
} from "./helpers.ts";

/** Puts `n` numbered messages (1..n) into a fresh durable queue. */
async function fillQueue(client: AMQPClient, q: string, n: number): Promise<void> {
  const ch = await client.channel();
  await ch.queueDeclare(q, { durable: true });
  await ch.confirmSelect();
  const pending: Promise<unknown>[] = [];
  for (let i = 1; i <= n; i++) pending.push(ch.basicPublish("", q, String(i)));
  await Promise.all(pending);
  await ch.close();
}

/** Runs kmq through bash, so arguments and redirections can carry raw bytes. */
async function viaBash(script: string): Promise<{ code: number; stderr: string }> {
  const [cmd, pre] = kmqCommand();
  const out = await new Deno.Command("bash", {
    args: ["-c", script, "bash", cmd, ...pre],
    env: { KMQ_URL: TEST_URL, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("a reader that closes stdout: exit 141, said on stderr, unwritten messages back in the queue", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const N = 2000;
    await fillQueue(client, q, N);
    const [cmd, pre] = kmqCommand();
    const child = new Deno.Command(cmd, {
      args: [...pre, "consume", "-e", "", "-q", q, "-p", "1"],
      env: { KMQ_URL: TEST_URL, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderrText = new Response(child.stderr).text();
    const reader = child.stdout.getReader();
    await reader.read(); // the first chunk, as `head -1` would
    await reader.cancel(); // and the reader goes away
    const status = await child.status;
    const stderr = await stderrText;
    assertEquals(status.code, 141, stderr);
    const said =
      /the reader of stdout went away after (\d+) message\(s\) written and settled: the messages not written went back to the queue/
        .exec(stderr);
    assert(said, `says so: ${stderr}`);
    // every message was either written (and acked) or is back in the queue
    assertEquals(await queueDepth(client, q), N - Number(said[1]));
  });
});

Deno.test("the broker cancelling the consumer (its queue deleted): exit 9 with its own message", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const consumer = await startConsumer(["-e", "", "-q", q]);
    const ch = await client.channel();
    await ch.queueDelete(q);
    const r = await consumer.result();
    assertEquals(r.code, 9, r.stderr);
    assertMatch(
      r.stderr,
      new RegExp(`the broker cancelled the consumer of queue '${q}' \\(the queue was deleted`),
    );
    assert(!/unexpected|\n\s+at /.test(r.stderr), `no 'unexpected', no stack: ${r.stderr}`);
  });
});

/**
 * Publishes a message whose header `deep` nests `depth` tables, and one ordinary message after
 * it; returns once both are in the queue. No confirms: the raw frame is sent past the client, whose
 * confirm counting would not know it (a test run hung on that once).
 */
async function publishDeep(q: string, depth: number): Promise<void> {
  let inner = Uint8Array.from([0x46, 0, 0, 0, 0]); // F, empty table
  for (let i = 1; i < depth; i++) {
    const w = new ByteWriter(inner.length + 16);
    w.u8(0x46);
    w.u32(inner.length + 2);
    w.shortString("d");
    w.bytes(inner);
    inner = Uint8Array.from(w.view());
  }
  const client = new AMQPClient(`${TEST_URL}?frameMax=131072`);
  await client.connect();
  try {
    const ch = await client.channel();
    await ch.queueDeclare(q, { durable: true });
    const before = (await ch.queueDeclare(q, { passive: true })).messageCount;
    const w = new ByteWriter();
    const props = encodeProperties({ headers: { deep: new RawField(inner) } });
    writePublish(w, ch.id, client.frameMax, "", q, false, props, new TextEncoder().encode("deep"));
    await client.send(Uint8Array.from(w.view()));
    await ch.basicPublish("", q, "after");
    const deadline = Date.now() + 10_000;
    while ((await ch.queueDeclare(q, { passive: true })).messageCount < before + 2) {
      assert(Date.now() < deadline, "both messages reach the queue");
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await Promise.race([client.close().catch(() => {}), new Promise((r) => setTimeout(r, 3000))]);
    client.socket?.destroy();
  }
}

Deno.test("a header nested 15,000 deep neither crashes consume nor blocks the queue; it replays byte-exact", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    await publishDeep(q, 15_000);
    const json = await run(["consume", "-e", "", "-q", q, "-n", "2", "-o", "json"]);
    assertEquals(json.code, 0, json.stderr);
    const [deep, after] = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assertEquals(deep.body, "deep");
    assertEquals(after.body, "after");
    // 100 levels decoded, the rest kept as the broker sent it
    assert(JSON.stringify(deep.properties.headers).includes('"$raw"'), "the depth past 100 is kept raw");
    // replayed, it comes back identical
    const replay = await run(["produce", "--jsonl", "-e", "", "-r", q], {
      stdin: JSON.stringify(deep) + "\n",
    });
    assertEquals(replay.code, 0, replay.stderr);
    const again = await run(["consume", "-e", "", "-q", q, "-n", "1", "-o", "json"]);
    assertEquals(JSON.parse(again.stdout).properties, deep.properties);
    await publishDeep(q, 15_000);
    const line = await run(["consume", "-e", "", "-q", q, "-n", "2"]);
    assertEquals([line.code, line.stdout], [0, "deep\nafter\n"], line.stderr);
    assertEquals(await queueDepth(client, q), 0);
  });
});

Deno.test("bytes that are not UTF-8 on the command line are refused (exit 3), never replaced", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const body = await viaBash(`"$@" produce -e '' -r ${q} -q ${q} "$(printf 'ab\\377\\376cd')"`);
    assertFailure(
      { ...body, stdout: "", stdoutBytes: new Uint8Array() },
      3,
      /argument 8 is not valid UTF-8.*stdin or with --file/,
    );
    const header = await viaBash(`"$@" produce -e '' -r ${q} -q ${q} -H "h=$(printf '\\377')" x`);
    assertEquals(header.code, 3, header.stderr);
    // a real U+FFFD is text, and goes as it is
    const real = await viaBash(`"$@" produce -e '' -r ${q} -q ${q} "$(printf '\\357\\277\\275')"`);
    assertEquals(real.code, 0, real.stderr);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["\uFFFD"]);
  });
});

Deno.test("stdin that is a directory: exit 3", async () => {
  const r = await viaBash(`"$@" produce -e '' -r nowhere --no-mandatory < /tmp`);
  assertFailure({ ...r, stdout: "", stdoutBytes: new Uint8Array() }, 3, /standard input is a directory/);
});

Deno.test("large command output is streamed whole: concurrent commands never interleave", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    await fillQueue(client, q, 4);
    // each command prints 3 MiB of its own letter: past what kmq holds, so it streams
    const r = await run([
      "consume",
      "-e",
      "",
      "-q",
      q,
      "-n",
      "4",
      "-c",
      "4",
      "--",
      "sh",
      "-c",
      'l=$(printf "\\\\$(printf %o $((96 + $(cat))))"); head -c 3145728 /dev/zero | tr "\\\\0" "$l"',
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdoutBytes.length, 4 * 3145728);
    const runs = r.stdout.match(/(.)\1*/g)!;
    assertEquals(runs.map((s) => s.length), [3145728, 3145728, 3145728, 3145728]);
    assertEquals(runs.map((s) => s[0]).sort(), ["a", "b", "c", "d"]);
  });
});

Deno.test("passwords with / : @ % # ? and a space: percent-encoded they work; never shown, even with -v", async () => {
  const user = unique("kmq-special");
  const password = `p/:@%#? x-${crypto.randomUUID().slice(0, 6)}`;
  const ctl = (...args: string[]) => new Deno.Command("rabbitmqctl", { args, stdout: "null" }).output();
  await ctl("add_user", user, password);
  const q = unique("kmq-q");
  try {
    await ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*");
    const host = new URL(TEST_URL).host;
    const encoded = `amqp://${user}:${encodeURIComponent(password)}@${host}/`;
    await withCleanup({ queues: [q] }, async () => {
      const ok = await run(["-v", "produce", "-e", "", "-r", q, "-q", q, "x"], { env: { KMQ_URL: encoded } });
      assertEquals(ok.code, 0, ok.stderr);
      assertMatch(ok.stderr, new RegExp(`connecting to amqp://${user}:\\*\\*\\*@`));
      for (const shown of [ok.stdout, ok.stderr]) {
        assert(!shown.includes(password) && !shown.includes(encodeURIComponent(password)), shown);
      }
      const raw = await run(["-v", "produce", "-e", "", "-r", q, "x"], {
        env: { KMQ_URL: `amqp://${user}:${password}@${host}/` },
      });
      assertEquals(raw.code, 2, raw.stderr);
      const secret = password.slice(password.indexOf("x-"));
      assert(!raw.stderr.includes(secret), `password part shown: ${raw.stderr}`);
    });
  } finally {
    await ctl("delete_user", user);
  }
});

Deno.test("8,000 -H headers go out and come back", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async () => {
    const headers = Array.from({ length: 8000 }, (_, i) => ["-H", `h${i}=${i}`]).flat();
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, ...headers, "x"]);
    assertEquals(p.code, 0, p.stderr);
    const c = await run(["consume", "-e", "", "-q", q, "-n", "1", "-o", "json"]);
    const got = JSON.parse(c.stdout).properties.headers;
    assertEquals(Object.keys(got).length, 8000);
    assertEquals(got.h7999, "7999");
  });
});

Deno.test("consume -- false: a command that fails is exit 8, also with --idle-timeout", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    await fillQueue(client, q, 3);
    const one = await run(["consume", "-e", "", "-q", q, "-n", "1", "--", "false"]);
    assertEquals(one.code, 8, one.stderr);
    assertMatch(one.stderr, /handler exit status 1 .*: rejected/);
    assertMatch(one.stderr, /1 message\(s\) not handled: the command failed for them/);
    const idle = await run(["consume", "-e", "", "-q", q, "--idle-timeout", "1", "--", "false"]);
    assertEquals(idle.code, 8, idle.stderr);
    assertMatch(idle.stderr, /2 message\(s\) not handled/);
    assertEquals(
      await queueDepth(client, q),
      0,
      "rejected, not requeued: the queue has no dead-letter exchange",
    );
  });
});

Deno.test("a .env or bunfig.toml in the working directory changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/.env`, "KMQ_URL=amqp://guest:guest@127.0.0.1:1/\n");
    await Deno.writeTextFile(
      `${dir}/bunfig.toml`,
      '[define]\n"process.env.KMQ_URL" = "\\"amqp://127.0.0.1:1/\\""\n',
    );
    // no KMQ_URL of the test run: a .env cannot override a variable that is set
    const r = await run(["declare", "-e", "", "-q", ""], { cwd: dir, noUrl: true });
    assertEquals(r.code, 0, r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
