/** The tests' own helpers, where they must hold: a helper connection outlives a broker restart. */
import { assertEquals } from "./assert.ts";
import { broker, queueDepth } from "./helpers.ts";
import { PrivateBroker } from "./private_broker.ts";

Deno.test("helpers: a helper connection opens again after its broker restarted, so the tests after it go on", async () => {
  const node = new PrivateBroker();
  try {
    await node.start();
    const client = await broker(node.url);
    try {
      const ch = await client.channel();
      await ch.queueDeclare("kept", { durable: true });
      await ch.basicPublish("", "kept", "one", { deliveryMode: 2 });
      await ch.close();
      await node.restart();
      // the old connection died with the node: the next channel opens a new one
      assertEquals(await queueDepth(client, "kept"), 1);
    } finally {
      await client.close().catch(() => {});
    }
  } finally {
    await node.close();
  }
});
