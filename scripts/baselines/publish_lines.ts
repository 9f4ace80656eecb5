/**
 * Baseline for bench case 1: stdin lines published with @cloudamqp/amqp-client as a plain
 * script would — persistent, awaiting each socket write. With the argument `confirmed`: confirms
 * and mandatory on, as kmq's defaults, every confirm awaited before it closes.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import process from "node:process";
import { createInterface } from "node:readline";

// wrapped in a function: bun's --bytecode refuses top-level await
async function main(): Promise<void> {
  const client = new AMQPClient(process.env.KMQ_URL ?? "amqp://guest:guest@localhost:5672/");
  await client.connect();
  const ch = await client.channel();
  const confirmed = process.argv[2] === "confirmed";
  if (confirmed) await ch.confirmSelect();
  const props = { contentType: "text/plain", contentEncoding: "utf-8", deliveryMode: 2 };
  const pending: Promise<unknown>[] = [];
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    const sent = ch.basicPublish("test_exchange", "test", line, props, confirmed);
    // with confirms the promise settles on the confirm: keep it and go on (a window of all)
    if (confirmed) pending.push(sent);
    else await sent;
  }
  await Promise.all(pending);
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
