/**
 * What a stopping consumer still holds unhandled goes back to its queue. On a quorum queue that
 * counts every return toward a delivery limit (RabbitMQ before 4.3), a message whose return would
 * take it past the limit — or every one, where a policy could set a limit kmq cannot see — is
 * published to the queue's tail as a new message instead (its count starts again at 0), and the
 * old one acked once that is confirmed. The rest go back as always, when the channel closes.
 */
import type { AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import type { BrokerOptions } from "../amqp/connection.ts";
import { DEFAULT_EXCHANGE_ONLY } from "../amqp/declarations.ts";
import { Publisher } from "../amqp/publisher.ts";
import { queueFacts } from "../amqp/queue-facts.ts";
import { republished } from "../amqp/republish.ts";
import { TypedField } from "../messages/fields.ts";
import type { Log } from "../term/log.ts";

/** The delivery count a quorum queue gave a message (absent: never returned). */
function deliveryCount(msg: AMQPMessage): number {
  const raw = msg.properties.headers?.["x-delivery-count"] as unknown;
  const v = raw instanceof TypedField ? raw.value : raw;
  return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : 0;
}

export async function putBackSafely(
  client: AMQPClient,
  queue: string,
  held: AMQPMessage[],
  broker: BrokerOptions,
  log: Log,
): Promise<void> {
  if (held.length === 0 || client.closed) return;
  const facts = await queueFacts(client, queue, broker).catch(() => undefined);
  if (facts?.type !== "quorum" || !facts.requeueCounts) return;
  const limit = facts.deliveryLimit;
  const risky = held.filter((m) => limit === undefined ? !facts.limitKnown : deliveryCount(m) + 1 > limit);
  if (risky.length === 0) return;
  const publisher = new Publisher({
    broker,
    topology: DEFAULT_EXCHANGE_ONLY,
    mandatory: true,
    confirm: true,
    retryTimeout: 0,
    log,
    name: "kmq consume",
  });
  let moved = 0;
  try {
    await publisher.open();
    for (const msg of risky) {
      await publisher.publish({
        exchange: "",
        routingKey: queue,
        // the broker's own count is not carried over: the new message starts at 0
        properties: republished(msg.properties, {}, ["x-delivery-count"]),
        body: msg.body ?? new Uint8Array(0),
        origin: `a message in hand (${msg.routingKey})`,
        settled: (delivered) => {
          if (!delivered) return; // left unacked: it goes back with the channel, as the others
          moved++;
          msg.ack().catch(() => {});
        },
      });
    }
    await publisher.drain();
  } catch (err) {
    log.warn(`could not put messages in hand at the tail of queue '${queue}' (${(err as Error).message})`);
  } finally {
    await publisher.close();
  }
  const why = limit === undefined
    ? "a policy may set a delivery limit kmq cannot see"
    : `returned, they would pass its delivery limit of ${limit} (${facts.limitSource})`;
  if (moved > 0) {
    log.warn(
      `${moved} message(s) in hand went to the tail of quorum queue '${queue}' as new messages: ${why}`,
    );
  }
}
