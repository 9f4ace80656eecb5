/**
 * Baseline for the bench: the tutorial's producer.py written directly against
 * @cloudamqp/amqp-client — declare the exchange, publish "Hello World!" persistent and confirmed,
 * close. Same broker work as `kmq produce "Hello World!"` minus kmq itself.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import process from "node:process";

// wrapped in a function: bun's --bytecode (used for dist/kmq too) refuses top-level await
async function main(): Promise<void> {
  const client = new AMQPClient(process.env.KMQ_URL ?? "amqp://guest:guest@localhost:5672/");
  await client.connect();
  const ch = await client.channel();
  await ch.exchangeDeclare("test_exchange", "direct", { durable: true });
  await ch.queueDeclare("queue", { durable: true });
  await ch.queueBind("queue", "test_exchange", "test");
  await ch.confirmSelect();
  await ch.basicPublish("test_exchange", "test", "Hello World!", {
    contentType: "text/plain",
    contentEncoding: "utf-8",
    deliveryMode: 2,
  }, true);
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
