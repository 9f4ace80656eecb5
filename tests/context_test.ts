/** Named contexts: the config file, --context / KMQ_CONTEXT, what overrides them, what is refused. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, run, TEST_URL, unique, withCleanup } from "./helpers.ts";

const SECRET = "s3cr%40t";

/** A config file in a directory of its own; `mode` as chmod takes it. */
async function configFile(text: string, mode = 0o600): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/config.toml`;
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
  return { dir, path };
}

const test = new URL(TEST_URL);
const HOST = `${test.hostname}:${test.port || 5672}`;

const CONFIG = `
default-context = "dev"

[contexts.dev]
url = "amqp://guest:guest@${HOST}/"

[contexts.down]
url = "amqp://guest:${SECRET}@127.0.0.1:1/"

[contexts.filed]
# the password comes from a file beside this one; the first address is down (failover)
url = ["amqp://guest@127.0.0.1:1/", "amqp://guest@${HOST}/"]
password-file = "pw"
`;

Deno.test("contexts: list, show and use, passwords masked; the default and --context pick the broker", async () => {
  const { dir, path } = await configFile(CONFIG);
  await Deno.writeTextFile(`${dir}/pw`, "guest\n");
  const q = unique("kmq-ctx");
  const env = { KMQ_CONFIG: path };
  try {
    await withCleanup({ queues: [q] }, async () => {
      const list = await run(["config", "list"], { env, noUrl: true });
      assertEquals(list.code, 0, list.stderr);
      assertEquals(list.stdout.split("\n")[0], `* dev  amqp://${HOST} vhost '/' user 'guest'`);
      assert(!list.stdout.includes("s3cr"), "no password in the list");
      const show = await run(["config", "show", "down"], { env, noUrl: true });
      assertEquals(show.stdout, "context down\n  url = amqp://guest:***@127.0.0.1:1/\n", show.stderr);
      // the default context reaches the test broker; --context down does not (exit 4, password masked)
      assertEquals((await run(["produce", "-e", "", "-q", q, "by default"], { env, noUrl: true })).code, 0);
      const down = await run(["--context", "down", "produce", "-e", "", "-q", q, "x"], { env, noUrl: true });
      assertFailure(down, 4, /127\.0\.0\.1:1/);
      assert(!down.stderr.includes("s3cr"), down.stderr);
      // a flag wins over the context's setting, and so does KMQ_URL
      assertEquals(
        (await run(["--context", "down", "-u", TEST_URL, "produce", "-e", "", "-q", q, "by flag"], {
          env,
          noUrl: true,
        })).code,
        0,
      );
      assertEquals(
        (await run(["produce", "-e", "", "-q", q, "by variable"], {
          env: { ...env, KMQ_CONTEXT: "down", KMQ_URL: TEST_URL },
        })).code,
        0,
      );
      // a password file relative to the config file, and a list of URLs failing over
      const filed = await run(["--context", "filed", "produce", "-e", "", "-q", q, "by file"], {
        env,
        noUrl: true,
      });
      assertEquals(filed.code, 0, filed.stderr);
      const use = await run(["config", "use", "filed"], { env, noUrl: true });
      assertEquals([use.code, use.stdout], [0, "default context: filed\n"], use.stderr);
      assertMatch(await Deno.readTextFile(path), /^default-context = "filed"$/m);
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600, "the file's mode is kept");
      assertMatch(await Deno.readTextFile(path), /# the password comes from a file/, "comments are kept");
      const got = await run(["consume", "-q", q, "-n", "4"], { env, noUrl: true });
      assertEquals(got.stdout, "by default\nby flag\nby variable\nby file\n", got.stderr);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("contexts: a readable file with a password, unknown names and keys, bad TOML: exit 2 naming the fix", async () => {
  const files: string[] = [];
  const make = async (text: string, mode = 0o600) => {
    const f = await configFile(text, mode);
    files.push(f.dir);
    return { KMQ_CONFIG: f.path };
  };
  try {
    const readable = await make(CONFIG, 0o644);
    assertFailure(
      await run(["produce", "x"], { env: readable, noUrl: true }),
      2,
      /config file '.*config\.toml' holds a password and others can read it \(mode 644\): chmod 600/,
    );
    assertFailure(await run(["config", "list"], { env: readable, noUrl: true }), 2, /chmod 600/);
    // no password in it: readable is fine
    const open = await make(`[contexts.a]\nurl = "amqp://guest@${HOST}/"\n`, 0o644);
    assertEquals((await run(["config", "list"], { env: open, noUrl: true })).code, 0);
    const env = await make(CONFIG);
    assertFailure(
      await run(["--context", "prod", "produce", "x"], { env, noUrl: true }),
      2,
      /no context 'prod' in '.*': the contexts are dev, down, filed/,
    );
    assertFailure(
      await run(["produce", "x"], { env: { ...env, KMQ_CONTEXT: "prod" }, noUrl: true }),
      2,
      /no context 'prod'/,
    );
    const key = await make(`[contexts.a]\nurl = "amqp://h/"\npasword-file = "x"\n`);
    assertFailure(
      await run(["produce", "x"], { env: key, noUrl: true }),
      2,
      /context 'a': unknown key 'pasword-file' \(the keys are url, password-file, cacert, cert, key, api-url\)/,
    );
    assertEquals(
      (await run(["produce", "--help"], { env: readable, noUrl: true })).code,
      0,
      "help needs no context",
    );
    const top = await make(`colour = "red"\n`);
    assertFailure(await run(["config", "list"], { env: top, noUrl: true }), 2, /unknown key 'colour'/);
    const bad = await make(`[contexts.a\nurl = 1\n`);
    assertFailure(await run(["config", "list"], { env: bad, noUrl: true }), 2, /is not valid TOML at line 1/);
    assertFailure(
      await run(["--context", "dev", "produce", "x"], {
        env: { KMQ_CONFIG: "/nonexistent/kmq.toml" },
        noUrl: true,
      }),
      2,
      /context 'dev' asked for, but there is no config file '\/nonexistent\/kmq\.toml'/,
    );
    assertFailure(await run(["config", "use", "nope"], { env, noUrl: true }), 2, /no context 'nope'/);
  } finally {
    for (const dir of files) await Deno.remove(dir, { recursive: true });
  }
});
