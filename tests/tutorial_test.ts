/** The seed's system with no flags at all: `kmq consume`, then `kmq produce "Hello World!"`. */
import { assert, assertEquals } from "./assert.ts";
import { broker, drain, run, startConsumer, withCleanup } from "./helpers.ts";

async function resetTutorialTopology(): Promise<void> {
  const client = await broker();
  const ch = await client.channel();
  await ch.queueDelete("queue").catch(() => {});
  await ch.exchangeDelete("test_exchange").catch(() => {});
  await client.close();
}

Deno.test("tutorial: kmq consume then kmq produce 'Hello World!' with no flags", async () => {
  await resetTutorialTopology();
  await withCleanup({ queues: ["queue"], exchanges: ["test_exchange"] }, async () => {
    const consumer = await startConsumer([]);
    try {
      const p = await run(["produce", "Hello World!"]);
      assertEquals(p.code, 0, p.stderr);
      assertEquals(p.stdout, "");
      assertEquals(await consumer.waitForLines(1), ["Hello World!"]);
    } finally {
      consumer.kill("SIGINT");
    }
    const r = await consumer.result();
    assertEquals(r.code, 130, r.stderr);
    assertEquals(r.stdout, "Hello World!\n");
  });
});

Deno.test("tutorial: a message produced before any consumer waits in the default queue", async () => {
  await resetTutorialTopology();
  await withCleanup({ queues: ["queue"], exchanges: ["test_exchange"] }, async (client) => {
    const p = await run(["produce", "Hello World!"]);
    assertEquals(p.code, 0, p.stderr);
    const [msg, ...rest] = await drain(client, "queue");
    assert(msg, "the message is in queue 'queue'");
    assertEquals(rest.length, 0);
    assertEquals(msg.bodyToString(), "Hello World!");
    // Kombu's wire format for a str body: text/plain, utf-8, persistent
    assertEquals(msg.properties.contentType, "text/plain");
    assertEquals(msg.properties.contentEncoding, "utf-8");
    assertEquals(msg.properties.deliveryMode, 2);
    assertEquals(msg.exchange, "test_exchange");
    assertEquals(msg.routingKey, "test");
  });
});

Deno.test("tutorial: the default URL is amqp://guest:guest@localhost:5672/", async () => {
  await resetTutorialTopology();
  await withCleanup({ queues: ["queue"], exchanges: ["test_exchange"] }, async (client) => {
    const p = await run(["produce", "default url"], { noUrl: true });
    assertEquals(p.code, 0, p.stderr);
    const c = await run(["consume", "-n", "1"], { noUrl: true });
    assertEquals(c.code, 0, c.stderr);
    assertEquals(c.stdout, "default url\n");
    assertEquals((await drain(client, "queue")).length, 0);
  });
});
