/** Bad input and broken brokers: each gets its exit code, one line on stderr, no stack, no password. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, run, unique } from "./helpers.ts";

const SECRET = "s3cr3t-Pa55word";

Deno.test("usage errors are exit 2 with one line naming the fix", async (t) => {
  const cases: [string[], RegExp][] = [
    [["produce", "--bogus", "x"], /unknown option '--bogus'.*kmq produce --help/],
    [["produce", "--priority", "300", "x"], /--priority must be from 0 to 255/],
    [["produce", "--priority", "high", "x"], /--priority must be a whole number/],
    [["produce", "-H", "novalue", "x"], /'novalue' is not key=value/],
    [["produce", "-H", "n:={oops", "x"], /header 'n': '\{oops' is not valid JSON/],
    [["produce", "-t", "fan", "x"], /argument 'fan' is invalid.*direct, fanout, topic, headers/],
    [["produce", "--expiration", "-5", "x"], /--expiration must be from 0/],
    [["produce", "-l", "-f", "x.txt"], /one of them, not several/],
    [["consume", "-o", "xml"], /argument 'xml' is invalid.*line, raw, json/],
    [["consume", "-n", "0"], /--count must be from 1/],
    [["consume", "-p", "-1"], /--prefetch must be from 1 to 65535/],
    [["consume", "--idle-timeout", "soon"], /--idle-timeout must be a number of seconds/],
    [["frobnicate"], /unknown command 'frobnicate'/],
    [
      ["produce", "-u", "http://localhost/", "x"],
      /unsupported URL scheme 'http:'.*use amqp:\/\/ or amqps:\/\//,
    ],
    [["produce", "-u", "not a url", "x"], /invalid broker URL 'not a url'/],
    [["produce", "-u", "amqp://localhost/?heartbeat=often", "x"], /invalid heartbeat 'often'/],
  ];
  for (const [args, pattern] of cases) {
    await t.step(args.join(" "), async () => assertFailure(await run(args), 2, pattern));
  }
});

Deno.test("no command: help on stderr and exit 2", async () => {
  const r = await run([]);
  assertEquals(r.code, 2);
  assertMatch(r.stderr, /Usage: kmq/);
  assertMatch(r.stderr, /no command given/);
});

Deno.test("--help and --version exit 0 on stdout", async () => {
  const help = await run(["--help"]);
  assertEquals(help.code, 0);
  assertMatch(help.stdout, /Examples:[\s\S]*kmq produce "Hello World!"/);
  assertMatch(help.stdout, /Exit codes: 0 ok/);
  const sub = await run(["consume", "--help"]);
  assertEquals(sub.code, 0);
  assertMatch(sub.stdout, /--idle-timeout <seconds>/);
  const version = await run(["--version"]);
  assertEquals(version.code, 0);
  const pkg = JSON.parse(await Deno.readTextFile(new URL("../package.json", import.meta.url)));
  assertEquals(version.stdout.trim(), pkg.version);
});

Deno.test("a refused port is exit 4 at once", async () => {
  const r = await run(["produce", "x"], { env: { KMQ_URL: `amqp://guest:${SECRET}@127.0.0.1:1/` } });
  assertFailure(
    r,
    4,
    /connecting to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1\/: .*ECONNREFUSED.*check that the broker runs/,
  );
  assert(!r.stderr.includes(SECRET), "password never printed");
});

Deno.test("a host that accepts but never answers is exit 4 within about 10 s", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // listener closed
    }
  })();
  try {
    const started = Date.now();
    const r = await run(["consume"], {
      env: { KMQ_URL: `amqp://guest:${SECRET}@127.0.0.1:${(listener.addr as Deno.NetAddr).port}/` },
    });
    const elapsed = Date.now() - started;
    assertFailure(r, 4, /no answer within 10 s; check the host and port/);
    assert(elapsed >= 9_000 && elapsed < 15_000, `gave up after ${elapsed} ms`);
    assert(!r.stderr.includes(SECRET), "password never printed");
  } finally {
    listener.close();
    for (const c of held) c.close();
    await accepting;
  }
});

Deno.test("a wrong password is exit 5, and the password is never printed, even with --verbose", async () => {
  const r = await run(["-v", "produce", "x"], { env: { KMQ_URL: `amqp://guest:${SECRET}@127.0.0.1:5672/` } });
  assertEquals(r.code, 5, r.stderr);
  assertMatch(r.stderr, /login refused \(ACCESS_REFUSED\): check the user name and password/);
  assertMatch(r.stderr, /connecting to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672\//);
  assert(!r.stderr.includes(SECRET) && !r.stdout.includes(SECRET), "password never printed");
  assert(!/\n\s+at /.test(r.stderr), "no stack trace");
});

Deno.test("a password given by -u never shows up either", async () => {
  const r = await run(["produce", "-u", `amqp://guest:${SECRET}@127.0.0.1:5672/`, "x"]);
  assertFailure(r, 5, /login refused/);
  assert(!r.stderr.includes(SECRET), "password never printed");
});

Deno.test("an unknown vhost is exit 5 naming it", async () => {
  const vhost = unique("kmq-no-vhost");
  const r = await run(["produce", "x"], { env: { KMQ_URL: `amqp://guest:guest@127.0.0.1:5672/${vhost}` } });
  assertFailure(r, 5, new RegExp(`${vhost}.*(not found|refused)`));
});

Deno.test("a vhost the user has no permission on is exit 5", async () => {
  const vhost = unique("kmq-noperm");
  const ctl = (...args: string[]) =>
    new Deno.Command("rabbitmqctl", { args, stdout: "null", stderr: "null" }).output();
  const added = await ctl("add_vhost", vhost);
  assert(added.success, "rabbitmqctl add_vhost works on the test broker");
  try {
    const r = await run(["produce", "x"], { env: { KMQ_URL: `amqp://guest:guest@127.0.0.1:5672/${vhost}` } });
    assertFailure(r, 5, /refused|NOT_ALLOWED|ACCESS_REFUSED/);
  } finally {
    await ctl("delete_vhost", vhost);
  }
});

Deno.test("an unresolvable host name is exit 4", async () => {
  const r = await run(["produce", "x"], {
    env: { KMQ_URL: "amqp://guest:guest@no-such-host.invalid:5672/" },
  });
  assertFailure(r, 4, /no-such-host\.invalid/);
});
