/**
 * kmq unbind: each binding is checked with the management API before any is removed (a private
 * node with the plugin), exchange-to-exchange bindings, the broker's own exchanges as a source, and
 * the shared broker (no API) where kmq says it could not check.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { assertFailure, run, unique, withCleanup } from "./helpers.ts";
import { withManagementNode } from "./private_broker.ts";

/** rabbitmqctl list_bindings on a node: "source\tdestination\tkey" lines, sorted. */
async function bindings(node: string): Promise<string[]> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["-n", node, "-q", "list_bindings", "source_name", "destination_name", "routing_key"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) =>
    l && !l.startsWith("\t") && !l.startsWith("source_name")
  )
    .sort();
}

Deno.test("unbind: a binding that does not exist is exit 6 naming those that do, and nothing is unbound", async () => {
  await withManagementNode(async (node, env) => {
    const kmq = (...args: string[]) => run(args, { env });
    assertEquals(
      (await kmq("declare", "-e", "events", "-t", "topic", "-q", "audit", "-r", "a", "-r", "b")).code,
      0,
    );
    const before = await bindings(node.node);
    assertEquals(before, ["events\taudit\ta", "events\taudit\tb"]);

    // one present, one absent: refused as a whole
    const wrong = await kmq("unbind", "-e", "events", "-q", "audit", "-r", "a", "-r", "c");
    assertFailure(
      wrong,
      6,
      /no binding 'c' to unbind; the binding\(s\) between exchange 'events' and queue 'audit': 'a', 'b'; nothing was unbound/,
    );
    assertEquals(await bindings(node.node), before);

    const right = await kmq("unbind", "-e", "events", "-q", "audit", "-r", "a");
    assertEquals([right.code, right.stdout], [0, "unbound queue 'audit' from exchange 'events' (key 'a')\n"]);
    assertEquals(right.stderr, "");
    assertEquals(await bindings(node.node), ["events\taudit\tb"]);

    // a headers binding is named by its arguments
    const h = ["-e", "tenants", "-q", "acme", "-r", "", "--bind-arg", "tenant=acme", "--match", "all"];
    assertEquals((await kmq("declare", "-t", "headers", ...h)).code, 0);
    const otherArgs = await kmq(
      "unbind",
      "-e",
      "tenants",
      "-q",
      "acme",
      "-r",
      "",
      "--bind-arg",
      "tenant=acme",
    );
    assertFailure(
      otherArgs,
      6,
      /no binding '' \{"tenant":"acme"\} to unbind; .*'' \{"tenant":"acme","x-match":"all"\}/,
    );
    assertEquals((await kmq("unbind", ...h)).code, 0);
    assertEquals((await bindings(node.node)).filter((b) => b.startsWith("tenants")), []);

    // exchange to exchange, as declare --bind-exchange made it
    assertEquals(
      (await kmq(
        "declare",
        "-e",
        "archive",
        "-t",
        "fanout",
        "-q",
        "",
        "--bind-exchange",
        "events",
        "-r",
        "#",
      )).code,
      0,
    );
    const e2e = await kmq("unbind", "-e", "archive", "--bind-exchange", "events", "-r", "#");
    assertEquals(
      [e2e.code, e2e.stdout],
      [0, "unbound exchange 'archive' from exchange 'events' (key '#')\n"],
      e2e.stderr,
    );
    const again = await kmq("unbind", "-e", "archive", "--bind-exchange", "events", "-r", "#");
    assertFailure(again, 6, /there is no binding between exchange 'events' and exchange 'archive'/);

    // a queue bound to the broker's own amq.topic may be unbound from it
    assertEquals(
      (await kmq("declare", "-e", "amq.topic", "-t", "topic", "-q", "audit", "-r", "x.#")).code,
      0,
    );
    const own = await kmq("unbind", "-e", "amq.topic", "-q", "audit", "-r", "x.#");
    assertEquals(
      [own.code, own.stdout],
      [0, "unbound queue 'audit' from exchange 'amq.topic' (key 'x.#')\n"],
      own.stderr,
    );
  });
});

Deno.test("unbind: without the management API it unbinds and says it could not check", async () => {
  const [q, x] = [unique("kmq-unb"), unique("kmq-unbx")];
  await withCleanup({ queues: [q], exchanges: [x] }, async () => {
    assertEquals((await run(["declare", "-e", x, "-q", q, "-r", "a"])).code, 0);
    // the shared broker has no management plugin: its default address refuses
    const u = await run(["unbind", "-e", x, "-q", q, "-r", "a"], { env: { KMQ_API_URL: "" } });
    assertEquals([u.code, u.stdout], [0, `unbound queue '${q}' from exchange '${x}' (key 'a')\n`], u.stderr);
    assertMatch(u.stderr, /management API at .* is not reachable .*: cannot check that the binding exists/);
  });
});

Deno.test("unbind: -q and --bind-exchange together, or neither, is exit 2", async () => {
  for (const args of [["-e", "x", "-q", "q", "--bind-exchange", "s"], ["-e", "x"]]) {
    const r = await run(["unbind", ...args]);
    assertFailure(r, 2, /give -q QUEUE \(unbind the queue from -e\) or --bind-exchange SOURCE/);
  }
});
