/**
 * Baseline for bench case 2: a plain @cloudamqp/amqp-client consumer with manual acks and
 * kmq's default prefetch (100), writing each body and a newline to stdout, stopping after N.
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
  const newline = new Uint8Array([10]);
  await new Promise<void>((resolve) => {
    ch.basicConsume("queue", { noAck: false }, async (msg) => {
      process.stdout.write(msg.body ?? new Uint8Array());
      process.stdout.write(newline);
      await msg.ack();
      if (++seen === count) resolve();
    });
  });
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
