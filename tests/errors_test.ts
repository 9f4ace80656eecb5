/**
 * The bad-input matrix: every case runs with a broker user whose password is distinctive, and must
 * end with its exit code, one line on stderr naming the problem, no stack trace — and the password
 * nowhere in stdout or stderr, also with --verbose.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, run, type RunResult, TEST_URL, unique } from "./helpers.ts";

const SECRET = `Pa55-${crypto.randomUUID().slice(0, 8)}-distinctive`;
const USER = unique("kmq-matrix");
const broker = new URL(TEST_URL);
const hostPort = `${broker.hostname}:${broker.port || 5672}`;
/** The test broker, as the matrix user (who has every permission on /). */
const URL_OK = `amqp://${USER}:${SECRET}@${hostPort}/`;

interface Case {
  name: string;
  args: string[];
  code: number;
  stderr: RegExp;
  /** KMQ_URL; default {@link URL_OK}. */
  url?: string;
  stdin?: string;
  env?: Record<string, string>;
}

async function ctl(...args: string[]): Promise<void> {
  const out = await new Deno.Command("rabbitmqctl", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`rabbitmqctl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

/** Names the cases need in place on the broker (and removes afterwards). */
const names = {
  fanout: unique("kmq-fanout"),
  transientQueue: unique("kmq-transient"),
  exclusiveQueue: unique("kmq-exclusive"),
  noPermVhost: unique("kmq-noperm"),
  streamQueue: unique("kmq-stream"),
};

function cases(silentPort: number): Case[] {
  const nowhere = ["-e", "", "-r", "nowhere", "--no-mandatory"];
  const big = "b".repeat(9000);
  return [
    // the broker URL
    {
      name: "not a URL",
      args: ["produce", "x"],
      url: `not a url ${SECRET}`,
      code: 2,
      stderr: /the broker URL has no scheme \(not shown: it may hold a password\)/,
    },
    {
      name: "a URL without its scheme",
      args: ["produce", "x"],
      url: `${USER}:${SECRET}@${hostPort}`,
      code: 2,
      stderr: /the broker URL has no scheme \(not shown.*\): write amqp:\/\/user:/,
    },
    {
      name: "a second -u without a scheme is not part of the first one's vhost",
      args: ["-u", `${URL_OK}v`, "-u", hostPort, "produce", "x"],
      code: 2,
      stderr: new RegExp(
        `a -u value '${hostPort}' has no scheme: write amqp://${hostPort} \\(or amqps://\\)`,
      ),
    },
    {
      name: "a second -u without a scheme, holding a password",
      args: ["-u", URL_OK, "-u", `${USER}:${SECRET}@${hostPort}/`, "produce", "x"],
      code: 2,
      stderr: /a -u value has no scheme \(not shown: it may hold a password\)/,
    },
    {
      name: "unknown scheme",
      args: ["produce", "x"],
      url: `http://${USER}:${SECRET}@${hostPort}/`,
      code: 2,
      stderr: /unsupported URL scheme 'http:'.*use amqp:\/\/ or amqps:\/\//,
    },
    {
      name: "bad heartbeat parameter",
      args: ["produce", "x"],
      url: `${URL_OK}?heartbeat=often`,
      code: 2,
      stderr: /invalid heartbeat 'often'/,
    },
    {
      name: "frameMax too small",
      args: ["produce", "x"],
      url: `${URL_OK}?frameMax=1024`,
      code: 2,
      stderr: /frameMax 1024 in broker URL is too small: use 8192 or more/,
    },
    {
      name: "refused port",
      args: ["produce", "x"],
      url: `amqp://${USER}:${SECRET}@127.0.0.1:1/`,
      code: 4,
      stderr: /ECONNREFUSED.*check that the broker runs/,
    },
    {
      name: "unresolvable host",
      args: ["produce", "x"],
      url: `amqp://${USER}:${SECRET}@no-such-host.invalid:5672/`,
      code: 4,
      stderr: /no-such-host\.invalid/,
    },
    {
      name: "a port that accepts but never answers (10 s)",
      args: ["produce", "x"],
      url: `amqp://${USER}:${SECRET}@127.0.0.1:${silentPort}/`,
      code: 4,
      stderr: /no answer within 10 s; check the host and port/,
    },
    {
      name: "wrong password",
      args: ["produce", "x"],
      url: `amqp://${USER}:${SECRET}-wrong@${hostPort}/`,
      code: 5,
      stderr: /login refused \(ACCESS_REFUSED\): check the user name and password/,
    },
    {
      name: "wrong password with a space and an @ in it",
      args: ["produce", "x"],
      url: `amqp://${USER}:${SECRET} a@b@${hostPort}/`,
      code: 5,
      stderr: /login refused/,
    },
    {
      name: "unknown vhost",
      args: ["produce", "x"],
      url: `${URL_OK}kmq-no-such-vhost`,
      code: 5,
      stderr: /kmq-no-such-vhost.*(not found|refused)/,
    },
    {
      name: "no permission on the vhost",
      args: ["produce", "x"],
      url: `${URL_OK}${names.noPermVhost}`,
      code: 5,
      stderr: /refused|NOT_ALLOWED|ACCESS_REFUSED/,
    },
    {
      name: "a password file that does not exist",
      args: ["--password-file", "/nonexistent/pw", "produce", "x"],
      code: 3,
      stderr: /--password-file file '\/nonexistent\/pw' does not exist/,
    },
    {
      name: "a CA file that does not exist",
      args: ["--cacert", "/nonexistent/ca.pem", "produce", "x"],
      url: `amqps://${USER}:${SECRET}@${hostPort}/`,
      code: 3,
      stderr: /--cacert file '\/nonexistent\/ca.pem' does not exist/,
    },
    {
      name: "TLS options on amqp://",
      args: ["--cacert", "/etc/hostname", "produce", "x"],
      code: 2,
      stderr: /--cacert needs an amqps:\/\/ URL/,
    },
    {
      name: "a password with an unencoded '/' (read as a port by URL parsers)",
      args: ["produce", "x"],
      url: `amqp://${USER}:2024/${SECRET}@${hostPort}/`,
      code: 2,
      stderr: /has an at sign after its host: percent-encode special characters/,
    },
    {
      name: "a password with an unencoded '?'",
      args: ["produce", "x"],
      url: `amqp://${USER}:12?${SECRET}@${hostPort}/`,
      code: 2,
      stderr: /percent-encode special characters/,
    },
    {
      name: "a password with an unencoded '#'",
      args: ["produce", "x"],
      url: `amqp://${USER}:a#${SECRET}@${hostPort}/`,
      code: 2,
      stderr: /invalid broker URL|percent-encode/,
    },
    {
      name: "a password with a raw '%'",
      args: ["produce", "x"],
      url: `amqp://${USER}:50%zz${SECRET}@${hostPort}/`,
      code: 2,
      stderr: /a '%' that starts no %XX escape: percent-encode/,
    },
    // a list of addresses: each parsed alone, the first that answers used, none shown unmasked
    {
      name: "two URLs separated by a comma, the first down",
      args: ["produce", "x"],
      url: `amqp://other:${SECRET}2@127.0.0.1:1/,${URL_OK}`,
      code: 0,
      stderr: /^$/,
    },
    {
      name: "two URLs separated by a space, the first down",
      args: ["declare"],
      url: `amqp://other:${SECRET}2@127.0.0.1:1/ ${URL_OK}`,
      code: 0,
      stderr: /^$/,
    },
    {
      name: "two URLs separated by Kombu's ';', both down",
      args: ["produce", "x"],
      url: `amqp://a:${SECRET}@127.0.0.1:1/;amqp://b:${SECRET}@127.0.0.1:2/`,
      code: 4,
      stderr: /connecting to amqp:\/\/b:\*\*\*@127\.0\.0\.1:2\//,
    },
    {
      name: "a malformed second address names its position",
      args: ["produce", "x"],
      url: `${URL_OK},amqp://x:${SECRET}@host:notaport/`,
      code: 2,
      stderr: /^kmq: broker address 2 of 2: invalid broker URL \(not shown/,
    },
    // the broker refuses the topology
    {
      name: "exchange type conflict",
      args: ["produce", "-e", names.fanout, "x"],
      code: 6,
      stderr: new RegExp(`exchange '${names.fanout}'.*PRECONDITION_FAILED.*'fanout'.*--no-declare`),
    },
    {
      name: "durable conflict, with queue options given",
      args: ["consume", "-e", "", "-q", names.transientQueue, "--queue-type", "classic"],
      code: 6,
      stderr: new RegExp(
        `queue '${names.transientQueue}': it exists with durable 'false' where the command line asks for 'true': ` +
          "declare it with --no-durable to match",
      ),
    },
    {
      name: "a non-durable queue, with no queue options: used as it is",
      args: ["consume", "-e", "", "-q", names.transientQueue, "--idle-timeout", "1"],
      code: 0,
      stderr: /^$/,
    },
    {
      name: "missing exchange with --no-declare",
      args: ["produce", "-e", "kmq-no-such-exchange", "--no-declare", "x"],
      code: 6,
      stderr: /NOT_FOUND - no exchange 'kmq-no-such-exchange'.*kmq declare/,
    },
    {
      name: "missing queue with --no-declare",
      args: ["consume", "-e", "", "-q", "kmq-no-such-queue", "--no-declare"],
      code: 6,
      stderr: /NOT_FOUND - no queue 'kmq-no-such-queue'/,
    },
    {
      name: "exclusive queue of another connection",
      args: ["consume", "-e", "", "-q", names.exclusiveQueue],
      code: 6,
      stderr: /RESOURCE_LOCKED.*another connection holds it exclusively/,
    },
    // option values
    {
      name: "unknown option",
      args: ["produce", "--bogus", "x"],
      code: 2,
      stderr: /unknown option '--bogus'.*--help/,
    },
    { name: "unknown command", args: ["frobnicate"], code: 2, stderr: /unknown command 'frobnicate'/ },
    {
      name: "negative prefetch",
      args: ["consume", "-p", "-1"],
      code: 2,
      stderr: /--prefetch must be from 1 to 65535/,
    },
    {
      name: "priority 300",
      args: ["produce", "--priority", "300", "x"],
      code: 2,
      stderr: /--priority must be from 0 to 255/,
    },
    {
      name: "priority not a number",
      args: ["produce", "--priority", "high", "x"],
      code: 2,
      stderr: /--priority must be a whole number/,
    },
    {
      name: "unknown format",
      args: ["consume", "-o", "xml"],
      code: 2,
      stderr: /'xml' is invalid.*line, raw, json/,
    },
    {
      name: "header without =",
      args: ["produce", "-H", "novalue", "x"],
      code: 2,
      stderr: /'novalue' is not key=value/,
    },
    {
      name: "typed header that is not JSON",
      args: ["produce", "-H", "n:={oops", "x"],
      code: 2,
      stderr: /header 'n': '\{oops' is not valid JSON/,
    },
    {
      name: "unknown exchange type",
      args: ["produce", "-t", "fan", "x"],
      code: 2,
      stderr: /'fan' is invalid.*direct, fanout, topic, headers/,
    },
    {
      name: "negative expiration",
      args: ["produce", "--expiration", "-5", "x"],
      code: 2,
      stderr: /--expiration must be from 0/,
    },
    { name: "count 0", args: ["consume", "-n", "0"], code: 2, stderr: /--count must be from 1/ },
    {
      name: "idle timeout not a number",
      args: ["consume", "--idle-timeout", "soon"],
      code: 2,
      stderr: /--idle-timeout must be a number of seconds/,
    },
    {
      name: "rate 0",
      args: ["produce", "--rate", "0", "x"],
      code: 2,
      stderr: /--rate must be a number above 0/,
    },
    {
      name: "concurrency 0",
      args: ["consume", "-c", "0", "--", "true"],
      code: 2,
      stderr: /--concurrency must be from 1/,
    },
    {
      name: "--reply without a command",
      args: ["consume", "--reply"],
      code: 2,
      stderr: /--reply needs a command to run/,
    },
    {
      name: "two message sources",
      args: ["produce", "-l", "-f", "x.txt"],
      code: 2,
      stderr: /one of them, not several/,
    },
    {
      name: "call with two requests",
      args: ["call", "a", "b"],
      code: 2,
      stderr: /kmq call sends one request/,
    },
    {
      name: "a routing key over 255 bytes",
      args: ["produce", "-e", "", "-r", "r".repeat(256), "x"],
      code: 2,
      stderr: /--routing-key is 256 bytes long: AMQP allows at most 255/,
    },
    {
      name: "an exchange name over 255 bytes",
      args: ["produce", "-e", "e".repeat(300), "x"],
      code: 2,
      stderr: /--exchange is 300 bytes long/,
    },
    {
      name: "a queue name over 255 bytes",
      args: ["consume", "-q", "q".repeat(256)],
      code: 2,
      stderr: /--queue is 256 bytes long/,
    },
    {
      name: "a queue name with the broker's reserved prefix",
      args: ["consume", "-e", "", "-q", "amq.mine"],
      code: 2,
      stderr: /queue names starting with 'amq\.' are reserved by the broker/,
    },
    {
      name: "a word after consume without --",
      args: ["consume", "myqueue"],
      code: 2,
      stderr:
        /unexpected argument 'myqueue': to read queue 'myqueue' use -q myqueue; to run it .* put -- before it/,
    },
    {
      name: "a command that does not exist (before any message is taken)",
      args: ["consume", "-e", "", "-q", names.transientQueue, "--no-declare", "--", "no-such-command-kmq"],
      code: 2,
      stderr: /command 'no-such-command-kmq' not found in PATH/,
    },
    {
      name: "a stream queue with --no-ack",
      args: ["consume", "-e", "", "-q", names.streamQueue, "--no-declare", "--no-ack"],
      code: 2,
      stderr: /a stream queue needs acknowledgements: drop --no-ack/,
    },
    {
      name: "a server-named queue bound to nothing",
      args: ["consume", "-q", "", "-e", ""],
      code: 2,
      stderr: /-q '' with -e '' is a new queue bound to nothing/,
    },
    {
      name: "an amq. exchange that does not exist",
      args: ["produce", "-e", "amq.nothere", "x"],
      code: 6,
      stderr: /exchange 'amq.nothere' does not exist, and names starting with 'amq\.' are the broker's own/,
    },
    {
      name: "kmq call with a produce-only option",
      args: ["call", "--repeat", "3", "x"],
      code: 2,
      stderr: /kmq call does not take --repeat/,
    },
    // input data
    {
      name: "invalid --json argument",
      args: ["produce", ...nowhere, "--json", "{oops"],
      code: 3,
      stderr: /argument 1 is not valid JSON/,
    },
    {
      name: "invalid --json on stdin",
      args: ["produce", ...nowhere, "--json"],
      stdin: '{"a": ',
      code: 3,
      stderr: /stdin is not valid JSON/,
    },
    {
      name: "malformed --jsonl record",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body": "ok"}\n{oops\n',
      code: 3,
      stderr: /line 2 is not a valid record.*the 1 message\(s\) before it were published and confirmed/,
    },
    {
      name: "empty stdin",
      args: ["produce", ...nowhere],
      stdin: "",
      code: 3,
      stderr: /nothing to send: standard input was empty/,
    },
    {
      name: "empty stdin with --lines",
      args: ["produce", ...nowhere, "--lines"],
      stdin: "",
      code: 3,
      stderr: /nothing to send/,
    },
    {
      name: "a --file that does not exist",
      args: ["produce", ...nowhere, "-f", "/nonexistent/file.txt"],
      code: 3,
      stderr: /file '\/nonexistent\/file.txt' does not exist/,
    },
    {
      name: "a --file that is a directory",
      args: ["produce", ...nowhere, "-f", "/tmp"],
      code: 3,
      stderr: /'\/tmp' is a directory/,
    },
    {
      name: "a NaN double header",
      args: ["produce", ...nowhere, "-H", 'x:={"$double":"NaN"}', "x"],
      code: 3,
      stderr: /header 'x': \$double NaN cannot be sent: RabbitMQ refuses NaN and Infinity/,
    },
    {
      name: "an Infinity float in a --jsonl record",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body":"x","properties":{"headers":{"f":{"$float":"Infinity"}}}}\n',
      code: 3,
      stderr: /line 1 is not a valid record: .*Infinity cannot be sent/,
    },
    {
      name: "a header nested 101 deep",
      args: ["produce", ...nowhere, "-H", `deep:=${"[".repeat(101)}${"]".repeat(101)}`, "x"],
      code: 3,
      stderr: /header 'deep': nested deeper than 100 tables or arrays/,
    },
    {
      name: "a --jsonl record cut off at the end of the input",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body": "ok"}\n{"body": "cut',
      code: 3,
      stderr:
        /line 2 is cut off: the input ended in the middle of it.*the 1 message\(s\) before it were published/,
    },
    {
      name: "a --jsonl record with an unknown key",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body": "x", "propertiez": {}}\n',
      code: 3,
      stderr: /line 1 is not a valid record: unknown key 'propertiez'/,
    },
    {
      name: "a --jsonl record with an unknown property",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body": "x", "properties": {"content_typ": "a"}}\n',
      code: 3,
      stderr: /unknown key 'content_typ' in properties/,
    },
    {
      name: "a --jsonl expiration that is not a number",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body": "x", "properties": {"expiration": "abc"}}\n',
      code: 3,
      stderr: /properties.expiration must be a whole number of milliseconds/,
    },
    {
      name: "a --jsonl delivery_mode 9",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body": "x", "properties": {"delivery_mode": 9}}\n',
      code: 3,
      stderr: /delivery_mode must be 1 \(transient\) or 2 \(persistent\)/,
    },
    {
      name: "malformed base64 in --jsonl",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body_base64": "abc"}\n',
      code: 3,
      stderr: /'body_base64' must be base64 text/,
    },
    {
      name: "a --jsonl record with another user's user_id",
      args: ["produce", ...nowhere, "--jsonl"],
      stdin: '{"body": "a"}\n{"body": "x", "properties": {"user_id": "mallory"}}\n',
      code: 3,
      stderr: /record 2 has user_id 'mallory', but the broker only takes the connected user's/,
    },
    {
      name: "a --jsonl record naming a missing exchange",
      args: ["produce", "--jsonl"],
      stdin: '{"body": "x", "exchange": "kmq-no-such-exchange"}\n',
      code: 6,
      stderr:
        /exchange 'kmq-no-such-exchange' \(record 1\): NOT_FOUND.*0 message\(s\) confirmed; 1 unconfirmed, the first of them record 1/,
    },
    {
      name: "a line over --max-message-size",
      args: ["produce", ...nowhere, "-l", "--max-message-size", "1000"],
      stdin: "short\n" + "x".repeat(5000) + "\n",
      code: 3,
      stderr: /line 2 is over 1000 bytes, the most --max-message-size allows/,
    },
    {
      name: "stdin over --max-message-size",
      args: ["produce", ...nowhere, "--max-message-size", "1000"],
      stdin: "x".repeat(5000),
      code: 3,
      stderr: /stdin is over 1000 bytes/,
    },
    {
      name: "a header that does not fit the frame size",
      args: ["produce", ...nowhere, "-H", `big=${big}`, "x"],
      url: `${URL_OK}?frameMax=8192`,
      code: 3,
      stderr:
        /argument 1: the message's properties and headers take \d+ bytes, more than fit in one 8192-byte frame/,
    },
  ];
}

/** A listener that accepts connections and never says a word. */
function silentListener(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      for (const c of held) c.close();
      await accepting;
    },
  };
}

function assertNoPassword(r: RunResult, context: string): void {
  assert(!r.stdout.includes(SECRET), `password on stdout (${context}): ${r.stdout}`);
  assert(!r.stderr.includes(SECRET), `password on stderr (${context}): ${r.stderr}`);
}

Deno.test({
  name: "bad-input matrix: exit code, one line, no stack trace, no password (also with --verbose)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await ctl("add_user", USER, SECRET);
    const silent = silentListener();
    const holder = new AMQPClient(URL_OK);
    try {
      await ctl("set_permissions", "-p", "/", USER, ".*", ".*", ".*");
      await ctl("add_vhost", names.noPermVhost);
      await holder.connect();
      const ch = await holder.channel();
      await ch.exchangeDeclare(names.fanout, "fanout", { durable: true });
      await ch.queueDeclare(names.transientQueue, { durable: false });
      await ch.queueDeclare(names.exclusiveQueue, { exclusive: true, durable: false });
      await ch.queueDeclare(names.streamQueue, { durable: true }, { "x-queue-type": "stream" });
      const all = cases(silent.port);
      assert(all.length >= 30, `at least 30 bad inputs (${all.length})`);
      for (const c of all) {
        await t.step(c.name, async () => {
          const env = { KMQ_URL: c.url ?? URL_OK, ...c.env };
          const started = Date.now();
          const r = await run(c.args, { env, stdin: c.stdin });
          const elapsed = Date.now() - started;
          assertFailure(r, c.code, c.stderr);
          assertNoPassword(r, c.name);
          if (c.name.includes("10 s")) {
            // the 10 s bound holds: not before it, and not far past it even on a loaded machine
            assert(elapsed >= 9_000 && elapsed < 30_000, `gave up after ${elapsed} ms`);
            return; // the slow one: once is enough
          }
          // --verbose logs more (and stack traces for unexpected errors): still no password
          const verbose = await run(["-v", ...c.args], { env, stdin: c.stdin });
          assertEquals(verbose.code, c.code, verbose.stderr);
          assertNoPassword(verbose, `${c.name}, --verbose`);
        });
      }
    } finally {
      const ch = await holder.channel().catch(() => undefined);
      await ch?.exchangeDelete(names.fanout).catch(() => {});
      await ch?.queueDelete(names.transientQueue).catch(() => {});
      await ch?.queueDelete(names.streamQueue).catch(() => {});
      await holder.close().catch(() => {});
      await silent.close();
      await ctl("delete_vhost", names.noPermVhost).catch(() => {});
      await ctl("delete_user", USER).catch(() => {});
    }
  },
});

Deno.test("a message over the broker's max message size: exit 3 naming it", async () => {
  const setMax = (bytes: number) => ctl("eval", `application:set_env(rabbit, max_message_size, ${bytes}).`);
  const q = unique("kmq-q");
  await ctl("add_user", USER, SECRET);
  try {
    await ctl("set_permissions", "-p", "/", USER, ".*", ".*", ".*");
    await setMax(1024 * 1024);
    const lines = ["small", "b".repeat(1024 * 1024 + 1), "after"].join("\n") + "\n";
    const r = await run(["produce", "-l", "-e", "", "-r", q, "-q", q], {
      env: { KMQ_URL: URL_OK },
      stdin: lines,
    });
    assertFailure(r, 3, /line 2 is 1048577 bytes, over the broker's max message size of 1048576 bytes/);
    assertNoPassword(r, "max message size");
  } finally {
    await setMax(128 * 1024 * 1024); // RabbitMQ's default
    await ctl("delete_queue", q).catch(() => {});
    await ctl("delete_user", USER).catch(() => {});
  }
});

Deno.test("no command: help on stderr and exit 2", async () => {
  const r = await run([]);
  assertEquals(r.code, 2);
  assertMatch(r.stderr, /Usage: kmq/);
  assertMatch(r.stderr, /no command given/);
});

Deno.test("kmq help COMMAND is COMMAND --help; a command that needs a subcommand says which", async () => {
  for (
    const [args, usage] of [
      [["help", "produce"], "kmq produce"],
      [
        ["help", "delete", "queue"],
        "kmq delete queue",
      ],
      [["help"], "kmq"],
      [["-u", "amqp://help", "help", "bench"], "kmq bench"],
    ] as const
  ) {
    const r = await run([...args]);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stdout.startsWith(`Usage: ${usage} [options]`), r.stdout.slice(0, 80));
  }
  // prose is wrapped to 80 columns when stdout is no terminal; examples stay whole; the reference is findable
  for (const args of [["--help"], ["unbind", "--help"], ["consume", "--help"]]) {
    const r = await run(args);
    const long = r.stdout.split("\n").filter((l) => l.length > 80 && !l.startsWith("  "));
    assertEquals(long, [], `${args.join(" ")}: prose lines over 80 columns`);
  }
  assertMatch((await run(["--help"])).stdout, /Reference: reference\.md beside kmq in its release archive/);
  assertFailure(
    await run(["help", "nosuch"]),
    2,
    /'nosuch' is not a kmq command: the commands are produce, call/,
  );
  // like kmq alone: the command's help on stderr, then the line that says what is missing
  const bare = await run(["delete"]);
  assertEquals(bare.code, 2);
  assertMatch(bare.stderr, /Usage: kmq delete [\s\S]*\nkmq: 'kmq delete' needs one of: queue, exchange\n$/);
  assertFailure(
    await run(["delete", "jobs"]),
    2,
    /say which, 'kmq delete queue jobs' or 'kmq delete exchange jobs'/,
  );
});

Deno.test("--help and --version exit 0 on stdout", async () => {
  const help = await run(["--help"]);
  assertEquals(help.code, 0);
  assertMatch(help.stdout, /Examples:[\s\S]*kmq produce "Hello World!"/);
  assertMatch(help.stdout, /Exit codes: 0 ok/);
  assertMatch(help.stdout, /--password-file <file>/);
  const sub = await run(["consume", "--help"]);
  assertEquals(sub.code, 0);
  assertMatch(sub.stdout, /--idle-timeout <seconds>/);
  assert(!/\(default: (false|\{\})\)/.test(sub.stdout), "no default shown for an off switch");
  const declare = await run(["declare", "--help"]);
  assertMatch(declare.stdout, /Examples:[\s\S]*kmq declare -e jobs -q jobs -r jobs/);
  const call = await run(["call", "--help"]);
  assert(!/--repeat|--lines|--no-confirm/.test(call.stdout), "call lists only what it uses");
  const version = await run(["--version"]);
  assertEquals(version.code, 0);
  const pkg = JSON.parse(await Deno.readTextFile(new URL("../package.json", import.meta.url)));
  assertEquals(version.stdout.trim(), pkg.version);
  const verbose = await run(["-v", "--version"]);
  assertMatch(
    verbose.stdout,
    new RegExp(`^kmq ${pkg.version} \\((bun|deno|node) [\\d.]+[^,]*, \\w+-\\w+\\)\\n$`),
  );
});
