/**
 * kmq info against a private node with the management plugin: the JSON agrees with rabbitmqctl's
 * list_queues, list_exchanges and list_bindings; the tree shows exchange → binding → queue; a
 * refused login, a missing vhost and an API that is not there each end in their exit code.
 */
import { assert, assertEquals } from "./assert.ts";
import { assertFailure, run, Running, sleep } from "./helpers.ts";
import { makeCertificates } from "./certificates.ts";
import { freePort, PrivateBroker, waitForApi } from "./private_broker.ts";

async function ctlJson(node: string, ...args: string[]): Promise<Record<string, unknown>[]> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-n", node, "-q", ...args, "--formatter", "json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const sortBy = <T>(rows: T[], key: (r: T) => string) => rows.sort((a, b) => (key(a) < key(b) ? -1 : 1));

const EVIL = "evil\x1b[2J\x07\x7f\x9b";
const PWN = "\x1b]0;PWNED\x07\x1b[2J";

Deno.test("info: the tree and -o json agree with rabbitmqctl's list_* on a node with the management API", async () => {
  const node = new PrivateBroker(undefined, { management: true });
  try {
    await node.start();
    await waitForApi(node.managementPort);
    const env = { KMQ_URL: `amqp://guest:guest@127.0.0.1:${node.port}/` };
    const api = ["--api-url", `http://127.0.0.1:${node.managementPort}`];
    for (
      const args of [
        ["declare"], // the tutorial's test_exchange → queue 'queue' (key test)
        ["declare", "-e", "events", "-t", "topic", "-q", "audit", "-r", "user.*", "-r", "order.#"],
        [
          "declare",
          "-e",
          "events",
          "-t",
          "topic",
          "-q",
          "orders-q",
          "-r",
          "order.#",
          "--queue-type",
          "quorum",
        ],
        [
          "declare",
          "-e",
          "tenants",
          "-t",
          "headers",
          "-q",
          "acme",
          "--bind-arg",
          "tenant=acme",
          "--match",
          "all",
        ],
        [
          "declare",
          "-e",
          "archive",
          "-t",
          "fanout",
          "--bind-exchange",
          "events",
          "-r",
          "#",
          "-q",
          "archived",
        ],
        ["declare", "-e", "", "-q", "lonely"],
        ["declare", "-e", "", "-q", EVIL], // sorts before 'lonely'
        // a binding argument that would retitle and clear the terminal, and a C1 CSI in its value
        [
          "declare",
          "-e",
          "hostile",
          "-t",
          "headers",
          "-q",
          "target",
          "--bind-arg",
          `${PWN}=v\x9b`,
          "--match",
          "any",
        ],
      ]
    ) {
      const r = await run(args, { env });
      assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }
    assertEquals((await run(["produce", "one", "two", "three"], { env })).code, 0);
    assertEquals(
      (await run(["produce", "-e", "events", "-t", "topic", "-r", "order.new", "x"], { env })).code,
      0,
    );

    // the API's statistics lag the queues a little: ask until they show the messages
    let info: {
      vhost: string;
      exchanges: { name: string; type: string; bindings: Record<string, unknown>[] }[];
      queues: Record<string, unknown>[];
    } | undefined;
    for (let i = 0; i < 40; i++) {
      const r = await run(["info", "-o", "json", ...api], { env });
      assertEquals(r.code, 0, r.stderr);
      info = JSON.parse(r.stdout);
      const ready = Object.fromEntries(info!.queues.map((q) => [q.name, q.messages_ready]));
      if (ready.queue === 3 && ready.archived === 1 && ready.audit === 1 && ready["orders-q"] === 1) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    assert(info !== undefined);
    assertEquals(info.vhost, "/");

    const ctlQueues = await ctlJson(
      node.node,
      "list_queues",
      "name",
      "type",
      "messages_ready",
      "messages_unacknowledged",
      "consumers",
    );
    assertEquals(
      sortBy(
        info.queues.filter((q) => q.name !== EVIL).map((q) => [
          q.name,
          q.type,
          q.messages_ready,
          q.messages_unacknowledged,
          q.consumers,
        ]),
        (r) => String(r[0]),
      ),
      sortBy(
        // rabbitmqctl's JSON garbles control characters (\x1b comes out as \uB100): EVIL is checked below
        ctlQueues.filter((q) => !String(q.name).startsWith("evil")).map((q) => [
          q.name,
          q.type,
          q.messages_ready,
          q.messages_unacknowledged,
          q.consumers,
        ]),
        (r) => String(r[0]),
      ),
    );
    const ctlExchanges = await ctlJson(node.node, "list_exchanges", "name", "type");
    assertEquals(
      sortBy(info.exchanges.map((e) => `${e.name}/${e.type}`), (s) => s),
      sortBy(ctlExchanges.map((e) => `${e.name}/${e.type}`), (s) => s),
    );
    const ctlBindings = await ctlJson(
      node.node,
      "list_bindings",
      "source_name",
      "destination_name",
      "destination_kind",
      "routing_key",
    );
    assertEquals(
      sortBy(
        info.exchanges.flatMap((e) =>
          e.bindings.map((b) => `${e.name}→${b.destination_type}:${b.destination}/${b.routing_key}`)
        ),
        (s) => s,
      ),
      sortBy(
        ctlBindings.filter((b) => b.source_name !== "").map((b) =>
          `${b.source_name}→${b.destination_kind}:${b.destination_name}/${b.routing_key}`
        ),
        (s) => s,
      ),
    );
    const acme = info.exchanges.find((e) => e.name === "tenants")!.bindings[0]!;
    assertEquals(acme.arguments, { tenant: "acme", "x-match": "all" });

    const tree = await run(["info", ...api], { env });
    assertEquals(tree.code, 0, tree.stderr);
    const lines = tree.stdout.split("\n");
    assertEquals(lines[0], "vhost '/'");
    for (
      const want of [
        "├── exchange 'archive' (fanout, durable)",
        "│   └── '#' → queue 'archived' (classic; 1 ready, 0 unacked, 0 consumer(s))",
        "├── exchange 'events' (topic, durable)",
        "│   ├── '#' → exchange 'archive'",
        "│   ├── 'order.#' → queue 'audit' (classic; 1 ready, 0 unacked, 0 consumer(s))",
        "│   ├── 'user.*' → queue 'audit' (classic; 1 ready, 0 unacked, 0 consumer(s))",
        "│   └── 'order.#' → queue 'orders-q' (quorum; 1 ready, 0 unacked, 0 consumer(s))",
        "├── exchange 'tenants' (headers, durable)",
        '│   └── {tenant: "acme", x-match: "all"} → queue \'acme\' (classic; 0 ready, 0 unacked, 0 consumer(s))',
        "├── exchange 'test_exchange' (direct, durable)",
        "│   └── 'test' → queue 'queue' (classic; 3 ready, 0 unacked, 0 consumer(s))",
        "└── only the default exchange routes to",
        "    └── queue 'lonely' (classic; 0 ready, 0 unacked, 0 consumer(s))",
      ]
    ) {
      assert(lines.includes(want), `missing line: ${want}\n${tree.stdout}`);
    }
    assert(!tree.stdout.includes("amq.direct"), "the broker's own unbound exchanges are left out");
    assert(
      lines.includes(
        '│   └── {\\x1b]0;PWNED\\x07\\x1b[2J: "v\\x9b", x-match: "any"} → queue \'target\' (classic; 0 ready, 0 unacked, 0 consumer(s))',
      ),
      tree.stdout,
    );
    // deno-lint-ignore no-control-regex -- the point: no raw control character but the newlines
    assert(!/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(tree.stdout), "nothing in the tree drives the terminal");

    // a name cannot drive the terminal: escaped in the tree, \u00NN in JSON (same value parsed)
    assert(
      lines.includes(
        "    ├── queue 'evil\\x1b[2J\\x07\\x7f\\x9b' (classic; 0 ready, 0 unacked, 0 consumer(s))",
      ),
      tree.stdout,
    );
    const json = await run(["info", "-o", "json", ...api], { env });
    // deno-lint-ignore no-control-regex -- the point: no raw control character but the newlines
    assert(!/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(json.stdout), json.stdout);
    assert(JSON.parse(json.stdout).queues.some((q: { name: string }) => q.name === EVIL));

    // the API's address derived from the URL: this node's API is not on 15672
    const listening = await Deno.connect({ hostname: "127.0.0.1", port: 15672 }).then(
      (c) => (c.close(), true),
      () => false,
    );
    const derived = await run(["info"], { env });
    if (!listening) { // the shared broker runs no management plugin
      assertFailure(derived, 4, /the management API at http:\/\/127\.0\.0\.1:15672\/api\/ is not reachable/);
    } else { // something answers there: whatever it says, kmq asked the derived address
      assert(
        derived.code === 0 || derived.stderr.includes("http://127.0.0.1:15672/api/"),
        `the derived address was used: ${derived.stderr}`,
      );
    }

    const wrong = await run(["info", ...api], {
      env: { KMQ_URL: `amqp://guest:Wr%40ng@127.0.0.1:${node.port}/` },
    });
    assertFailure(wrong, 5, /refused user 'guest': check the password/);
    assert(!wrong.stderr.includes("Wr"), "the password is not shown");
    const vhost = await run(["info", ...api], {
      env: { KMQ_URL: `amqp://guest:guest@127.0.0.1:${node.port}/nowhere` },
    });
    assertFailure(vhost, 6, /knows no virtual host 'nowhere'/);
  } finally {
    await node.close();
  }
});

Deno.test("info: no management API is exit 4 naming the plugin to enable; a bad --api-url is exit 2", async () => {
  const port = freePort();
  const r = await run(["info", "--api-url", `http://guest:s3cret@127.0.0.1:${port}/`]);
  assertFailure(
    r,
    4,
    new RegExp(
      `the management API at http://127\\.0\\.0\\.1:${port}/api/ is not reachable \\(connection refused\\): ` +
        "enable it with 'rabbitmq-plugins enable rabbitmq_management'",
    ),
  );
  assert(!r.stderr.includes("s3cret"));
  // a web server that is not RabbitMQ's: its 404 is not taken for a missing vhost
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("no", { status: 404 }),
  );
  try {
    const other = await run(["info", "--api-url", `http://127.0.0.1:${server.addr.port}/`]);
    assertFailure(other, 4, /is not reachable \(HTTP 404\)/);
  } finally {
    await server.shutdown();
  }
  // an API that takes the connection and never answers: exit 4 after 10 s, not a hang
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    const started = Date.now();
    const mute = await run(["info", "--api-url", `http://127.0.0.1:${(silent.addr as Deno.NetAddr).port}/`]);
    assertFailure(mute, 4, /is not reachable \(no answer within 10 s\)/);
    assert(Date.now() - started < 20_000, "bounded");
    // Ctrl-C while it waits: the whole process group, ended at once (read-only: nothing to lose)
    const waiting = new Running([
      "info",
      "--api-url",
      `http://127.0.0.1:${(silent.addr as Deno.NetAddr).port}/`,
    ], {
      setsid: true,
    });
    await sleep(1000);
    const signalled = Date.now();
    await waiting.killGroup("SIGINT");
    const stopped = await waiting.result();
    assertEquals(stopped.code, 130, stopped.stderr);
    // at once: far below the API's own 10 s and 20 s bounds, which a stop must not wait for
    assert(Date.now() - signalled < 8_000, "ends at once");
    assert(!/\bat \S+:\d+/.test(stopped.stderr), `no stack trace: ${stopped.stderr}`);
  } finally {
    silent.close();
    for (const c of held) c.close();
    await accepting.catch(() => {});
  }
  assertFailure(await run(["info", "--api-url", "ftp://x/"]), 2, /--api-url 'ftp:\/\/x\/' is not http/);
  assertFailure(await run(["info", "-o", "yaml"]), 2, /yaml/);
});

Deno.test({
  name: "info over HTTPS: --cacert is trusted as for amqps; without it the certificate is refused (exit 4)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const certs = await makeCertificates();
    const node = new PrivateBroker({ cacert: certs.ca, cert: certs.serverCert, key: certs.serverKey }, {
      management: true,
    });
    try {
      await node.start();
      const env = { KMQ_URL: `amqps://guest:guest@localhost:${node.tlsPort}/` };
      const api = ["--api-url", `https://localhost:${node.managementPort}/`];
      let r = await run(["info", "--cacert", certs.ca, ...api], { env });
      // the plugin's listener starts a little after AMQP's
      for (let i = 0; i < 120 && r.code === 4 && /connection refused/.test(r.stderr); i++) {
        await new Promise((res) => setTimeout(res, 500));
        r = await run(["info", "--cacert", certs.ca, ...api], { env });
      }
      assertEquals([r.code, r.stdout.split("\n")[0]], [0, "vhost '/'"], r.stderr);
      const untrusted = await run(["info", ...api], { env });
      assertFailure(untrusted, 4, /the management API at https:\/\/localhost:\d+\/api\/ is not reachable/);
    } finally {
      await node.close();
    }
  },
});
