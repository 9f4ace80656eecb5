/** What kmq declares, read back from the broker with rabbitmqctl. */
import { assert, assertEquals } from "./assert.ts";
import { run, startConsumer, unique, withCleanup } from "./helpers.ts";

async function rabbitmqctl(...args: string[]): Promise<Record<string, unknown>[]> {
  const out = await new Deno.Command("rabbitmqctl", { args: ["-q", ...args, "--formatter", "json"] })
    .output();
  assert(out.success, `rabbitmqctl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout) || "[]");
}

const findQueue = async (name: string) =>
  (await rabbitmqctl("list_queues", "name", "durable", "auto_delete", "exclusive")).find((q) =>
    q.name === name
  );
const findExchange = async (name: string) =>
  (await rabbitmqctl("list_exchanges", "name", "type", "durable", "auto_delete")).find((e) =>
    e.name === name
  );

Deno.test("declare: Kombu's defaults — durable direct exchange, durable queue, one binding", async () => {
  const ex = unique("kmq-ex");
  const q = unique("kmq-q");
  await withCleanup({ queues: [q], exchanges: [ex] }, async () => {
    const r = await run(["declare", "-e", ex, "-q", q]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await findExchange(ex), { name: ex, type: "direct", durable: true, auto_delete: false });
    assertEquals(await findQueue(q), { name: q, durable: true, auto_delete: false, exclusive: false });
    const bindings = (await rabbitmqctl("list_bindings", "source_name", "destination_name", "routing_key"))
      .filter((b) => b.source_name === ex);
    assertEquals(bindings, [{ source_name: ex, destination_name: q, routing_key: "test" }]);
  });
});

Deno.test("declare: --no-durable, --auto-delete and -t shape the entities", async () => {
  const ex = unique("kmq-ex");
  const q = unique("kmq-q");
  await withCleanup({ queues: [q], exchanges: [ex] }, async () => {
    // an auto-delete queue vanishes with its last consumer, so look while a consumer holds it
    const consumer = await startConsumer([
      "-e",
      ex,
      "-t",
      "topic",
      "-q",
      q,
      "-r",
      "#",
      "--no-durable",
      "--auto-delete",
    ]);
    try {
      assertEquals(await findExchange(ex), { name: ex, type: "topic", durable: false, auto_delete: true });
      assertEquals(await findQueue(q), { name: q, durable: false, auto_delete: true, exclusive: false });
    } finally {
      consumer.kill("SIGTERM");
    }
    assertEquals((await consumer.result()).code, 143);
  });
});

Deno.test("consume --exclusive: the queue belongs to kmq's connection", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async () => {
    const consumer = await startConsumer(["-e", "", "-q", q, "--exclusive", "--no-durable"]);
    try {
      assertEquals(await findQueue(q), { name: q, durable: false, auto_delete: false, exclusive: true });
    } finally {
      consumer.kill("SIGTERM");
    }
    assertEquals((await consumer.result()).code, 143);
  });
});

Deno.test("connections carry their name and a 30 s heartbeat; the URL can change both", async () => {
  const q = unique("kmq-q");
  await withCleanup({ queues: [q] }, async () => {
    const consumer = await startConsumer(["-e", "", "-q", q]);
    const named = await startConsumer([
      "-e",
      "",
      "-q",
      q,
      "-u",
      "amqp://guest:guest@127.0.0.1:5672/?heartbeat=7&name=mine",
    ]);
    try {
      const conns = await rabbitmqctl("list_connections", "client_properties", "timeout");
      const find = (name: string) =>
        conns.find((c) =>
          JSON.stringify(c.client_properties).includes(`"connection_name","longstr","${name}"`)
        );
      assertEquals(find("kmq consume")?.timeout, 30);
      assertEquals(find("mine")?.timeout, 7);
    } finally {
      consumer.kill("SIGTERM");
      named.kill("SIGTERM");
    }
    assertEquals((await consumer.result()).code, 143);
    assertEquals((await named.result()).code, 143);
  });
});

Deno.test("--no-declare uses existing entities as they are", async () => {
  const ex = unique("kmq-ex");
  const q = unique("kmq-q");
  await withCleanup({ queues: [q], exchanges: [ex] }, async () => {
    assertEquals((await run(["declare", "-e", ex, "-t", "fanout", "-q", q])).code, 0);
    // a different type would be a conflict if kmq declared; with --no-declare it only checks existence
    const p = await run(["produce", "--no-declare", "-e", ex, "-t", "direct", "-r", "any", "kept"]);
    assertEquals(p.code, 0, p.stderr);
    const c = await run(["consume", "--no-declare", "-e", ex, "-q", q, "-n", "1"]);
    assertEquals(c.code, 0, c.stderr);
    assertEquals(c.stdout, "kept\n");
  });
});
