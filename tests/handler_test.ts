/** `kmq consume -- <command>`: a command per message, its exit status deciding the ack. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, broker, drain, publishRaw, run, Running, unique, withCleanup } from "./helpers.ts";

const HANDLERS = new URL("./handlers/", import.meta.url).pathname;

/** A queue that dead-letters rejected messages into a second queue. */
async function queueWithDeadLetters(q: string, dlq: string): Promise<void> {
  const client = await broker();
  const ch = await client.channel();
  await ch.queueDeclare(dlq, { durable: true });
  await ch.queueDeclare(q, { durable: true }, {
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": dlq,
  });
  await client.close();
}

Deno.test("handler: exit 0 acks, 75 requeues, other statuses and signals reject (dead-lettered)", async () => {
  const [q, dlq] = [unique("kmq-q"), unique("kmq-dlq")];
  await withCleanup({ queues: [q, dlq] }, async (client) => {
    await queueWithDeadLetters(q, dlq);
    // the queue has arguments kmq does not declare: use it as it is
    const p = await run(["produce", "--no-declare", "-e", "", "-r", q, "ok", "again", "bad", "signal"]);
    assertEquals(p.code, 0, p.stderr);
    const r = await run([
      "consume",
      "--no-declare",
      "-e",
      "",
      "-q",
      q,
      "--idle-timeout",
      "1",
      "--",
      `${HANDLERS}verdict.sh`,
    ]);
    assertEquals(r.code, 8, r.stderr);
    assertMatch(
      r.stderr,
      /3 message\(s\) not handled: the command failed for them .*; 2 message\(s\) handled and settled$/m,
    );
    assertEquals(r.stdout.split("\n").filter(Boolean).sort(), ["handled again on redelivery", "handled ok"]);
    assertMatch(r.stderr, /handler exit status 75 for the message with routing key '.*': requeued/);
    assertMatch(r.stderr, /handler exit status 3 for the message with routing key '.*': rejected/);
    assertMatch(r.stderr, /handler killed by SIGKILL .*: rejected/);
    assertEquals(await drain(client, q), []);
    assertEquals((await drain(client, dlq)).map((m) => m.bodyToString()).sort(), ["bad", "signal"]);
  });
});

Deno.test("handler: every KMQ_* variable; unset properties leave theirs unset", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    await client.channel().then((ch) => ch.queueDeclare(q, { durable: true }));
    await publishRaw(client, "", q, "body", {
      contentType: "text/plain",
      contentEncoding: "utf-8",
      messageId: "mid",
      correlationId: "cid",
      replyTo: "rq",
      type: "kind",
      appId: "app",
      priority: 4,
      timestamp: new Date(1_700_000_000_000),
      headers: { h: "v" },
    });
    await publishRaw(client, "", q, "bare");
    const r = await run([
      "consume",
      "-e",
      "",
      "-q",
      q,
      "-n",
      "2",
      "--",
      "sh",
      "-c",
      "env | grep '^KMQ_' | sort; echo ---",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const [full = "", bare = ""] = r.stdout.split("---\n");
    const vars = Object.fromEntries(
      full.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    assertEquals(vars.KMQ_EXCHANGE, "");
    assertEquals(vars.KMQ_ROUTING_KEY, q);
    assertEquals(vars.KMQ_REDELIVERED, "false");
    assertEquals(vars.KMQ_DELIVERY_TAG, "1");
    assertEquals(
      [vars.KMQ_CONTENT_TYPE, vars.KMQ_CONTENT_ENCODING, vars.KMQ_MESSAGE_ID, vars.KMQ_CORRELATION_ID],
      ["text/plain", "utf-8", "mid", "cid"],
    );
    assertEquals([vars.KMQ_REPLY_TO, vars.KMQ_TYPE, vars.KMQ_APP_ID, vars.KMQ_PRIORITY], [
      "rq",
      "kind",
      "app",
      "4",
    ]);
    assertEquals(vars.KMQ_TIMESTAMP, "1700000000");
    assertEquals(JSON.parse(vars.KMQ_HEADERS!), { h: "v" });
    const record = JSON.parse(vars.KMQ_MESSAGE!);
    assertEquals([record.body, record.routing_key, record.properties.message_id], ["body", q, "mid"]);
    const bareNames = bare.trim().split("\n").map((l) => l.slice(0, l.indexOf("="))).sort();
    assertEquals(bareNames, [
      "KMQ_DELIVERY_TAG",
      "KMQ_EXCHANGE",
      "KMQ_MESSAGE",
      "KMQ_REDELIVERED",
      "KMQ_ROUTING_KEY",
    ]);
  });
});

Deno.test("handler: a body full of shell metacharacters never runs anything", async () => {
  const q = unique("kmq-q");
  const marker = `/tmp/${unique("kmq-injected")}`;
  const body = `$(touch ${marker}); touch ${marker} && \`touch ${marker}\` | ; > ${marker}`;
  await withCleanup({ queues: [q] }, async () => {
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--message-id", `$(touch ${marker})`, body]);
    assertEquals(p.code, 0, p.stderr);
    const r = await run(["consume", "-e", "", "-q", q, "-n", "1", "--", "cat"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, body);
    let exists = true;
    try {
      await Deno.stat(marker);
    } catch {
      exists = false;
    }
    assert(!exists, "nothing in the message was executed");
  });
});

Deno.test("handler -c 4: commands overlap, each one's output stays together", async () => {
  const q = unique("kmq-q");
  const dir = await Deno.makeTempDir();
  try {
    await withCleanup({ queues: [q] }, async () => {
      const p = await run(["produce", "-e", "", "-r", q, "-q", q, "--repeat", "8", "m"]);
      assertEquals(p.code, 0, p.stderr);
      const r = await run(
        ["consume", "-e", "", "-q", q, "-n", "8", "-c", "4", "--", `${HANDLERS}overlap.sh`],
        {
          env: { OVERLAP_DIR: dir },
        },
      );
      assertEquals(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      assertEquals(lines.length, 16);
      for (let i = 0; i < lines.length; i += 2) {
        const tag = /^first line of (\d+)$/.exec(lines[i]!)?.[1];
        assert(tag, `line ${i} starts a command's output: ${lines[i]}`);
        assertMatch(lines[i + 1]!, new RegExp(`^second line of ${tag}, \\d+ started$`));
      }
      const most = Math.max(
        ...lines.filter((l) => l.startsWith("second")).map((l) => Number(/(\d+) started/.exec(l)![1])),
      );
      assert(most >= 2, "several commands ran at once (each counts those running beside it)");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("handler --exec-timeout: a command that runs too long is killed and its message requeued", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "slow"]);
    assertEquals(p.code, 0, p.stderr);
    const r = await run([
      "consume",
      "-e",
      "",
      "-q",
      q,
      "-n",
      "1",
      "--exec-timeout",
      "0.5",
      "--",
      "sleep",
      "30",
    ]);
    assertEquals(r.code, 8, r.stderr);
    assertMatch(r.stderr, /handler killed after --exec-timeout 0.5 s .*: requeued/);
    const [m] = await drain(client, q);
    assertEquals([m?.bodyToString(), m?.redelivered], ["slow", true]);
  });
});

Deno.test("handler: a failing command's output goes to stderr after the line about its message", async () => {
  const [q, dlq] = [unique("kmq-q"), unique("kmq-dlq")];
  await withCleanup({ queues: [q, dlq] }, async (client) => {
    await queueWithDeadLetters(q, dlq);
    const p = await run(["produce", "--no-declare", "-e", "", "-r", q, "fine", "broken"]);
    assertEquals(p.code, 0, p.stderr);
    const script = 'read -r b; echo "diag for $b"; printf "no newline"; [ "$b" = fine ]';
    const r = await run([
      ...["consume", "--no-declare", "-e", "", "-q", q, "-n", "2", "--"],
      ...["sh", "-c", script],
    ]);
    assertEquals(r.code, 8, r.stderr);
    // a handled message's output is data; a failed one's is a diagnostic, shown whole
    assertEquals(r.stdout, "diag for fine\nno newline");
    assertMatch(
      r.stderr,
      /handler exit status 1 for the message with .*: rejected .*; its output \(26 bytes\) follows\ndiag for broken\nno newline\n/,
    );
    assertEquals((await drain(client, dlq)).map((m) => m.bodyToString()), ["broken"]);
  });
});

Deno.test("handler: a command that does not exist is exit 2, and the message stays", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async (client) => {
    const p = await run(["produce", "-e", "", "-r", q, "-q", q, "kept"]);
    assertEquals(p.code, 0, p.stderr);
    const r = await run(["consume", "-e", "", "-q", q, "--", "no-such-command-kmq"]);
    assertFailure(r, 2, /command 'no-such-command-kmq' not found in PATH: check the command after --/);
    assertEquals((await drain(client, q)).map((m) => m.bodyToString()), ["kept"]);
  });
});

Deno.test("rpc: consume --reply answers kmq call through direct reply-to", async () => {
  const q = unique("kmq-rpc");
  await withCleanup({ queues: [q] }, async () => {
    const d = await run(["declare", "-e", "", "-q", q]);
    assertEquals(d.code, 0, d.stderr);
    const server = new Running([
      "consume",
      "-e",
      "",
      "-q",
      q,
      "-n",
      "2",
      "--reply",
      "--reply-content-type",
      "text/x-answer",
      "--",
      "sh",
      "-c",
      'printf "answer to %s" "$(cat)"',
    ]);
    try {
      const r = await run(["call", "-e", "", "-r", q, "question?"]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "answer to question?");
      // a request without reply_to: the output goes to the server's stdout as usual
      const p = await run(["produce", "-e", "", "-r", q, "no reply wanted"]);
      assertEquals(p.code, 0, p.stderr);
    } finally {
      const out = await server.result();
      assertEquals(out.code, 0, out.stderr);
      assertEquals(out.stdout, "answer to no reply wanted");
    }
  });
});

Deno.test("rpc: kmq call without a server is exit 4 after --timeout; an unroutable request exit 7", async () => {
  const q = unique("kmq-rpc");
  await withCleanup({ queues: [q] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    const started = Date.now();
    assertFailure(
      await run(["call", "-e", "", "-r", q, "--timeout", "1", "hello?"]),
      4,
      /no reply within 1 s/,
    );
    assert(Date.now() - started < 8000, "gave up after the timeout");
    assertFailure(
      await run(["call", "-e", "", "-r", unique("kmq-nobody"), "hello?"]),
      7,
      /returned as unroutable.*is the server running\?/,
    );
  });
});
