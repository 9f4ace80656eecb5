/**
 * Baseline for bench case 1: stdin lines published with @cloudamqp/amqp-client as a plain
 * script would — persistent, no confirms, awaiting each socket write.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import process from "node:process";
import { createInterface } from "node:readline";

// wrapped in a function: bun's --bytecode refuses top-level await
async function main(): Promise<void> {
  const client = new AMQPClient(process.env.KMQ_URL ?? "amqp://guest:guest@localhost:5672/");
  await client.connect();
  const ch = await client.channel();
  const props = { contentType: "text/plain", contentEncoding: "utf-8", deliveryMode: 2 };
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    await ch.basicPublish("test_exchange", "test", line, props);
  }
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
