/**
 * Baseline for bench case 2: a lean @cloudamqp/amqp-client consumer — prefetch 100 (kmq's
 * default), manual acks sent as one multiple-ack per 50 messages, one write per message (body and
 * newline together) — stopping after N. As fast as a plain client gets, so kmq is not flattered.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import process from "node:process";

async function main(): Promise<void> {
  const count = Number(process.argv[2]);
  const client = new AMQPClient(process.env.KMQ_URL ?? "amqp://guest:guest@localhost:5672/");
  await client.connect();
  const ch = await client.channel();
  await ch.prefetch(100);
  let seen = 0;
  await new Promise<void>((resolve) => {
    ch.basicConsume("queue", { noAck: false }, (msg) => {
      const body = msg.body ?? new Uint8Array();
      const line = new Uint8Array(body.length + 1);
      line.set(body);
      line[body.length] = 10;
      process.stdout.write(line);
      if (++seen % 50 === 0 || seen === count) msg.ack(true);
      if (seen === count) resolve();
    });
  });
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
