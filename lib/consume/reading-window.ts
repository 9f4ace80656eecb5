/**
 * What a consume reads when it is to stop at the end (--exit-at-end), start N before the end
 * (--last) or stop at a time (--until): worked out against the queue as it is when kmq starts.
 * A queue's end is its ready count then; a stream's is its last offset then, found by reading its
 * last chunk, and a time's offset by attaching at that time (the broker's chunk granularity).
 */
import { readyCount } from "../amqp/ready-count.ts";
import type { AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import { queueFacts } from "../amqp/queue-facts.ts";
import type { BrokerOptions } from "../amqp/connection.ts";
import { TypedField } from "../messages/fields.ts";
import { UsageError } from "../term/errors.ts";

export interface WindowAsk {
  exitAtEnd: boolean;
  /** Start this many messages before a stream's end. */
  last?: number;
  /** Stop at the first message of a stream at or after this time (a Date or an interval such as 1h). */
  until?: Date | string;
  /** The stream offset asked with --offset, if any. */
  offset?: unknown;
  count?: number;
}

export interface ReadingWindow {
  /** Nothing to read: the queue (or the stream from the start asked) was empty. */
  empty: boolean;
  /** How many to read at most (undefined: no limit). */
  count?: number;
  /** The stream offset to attach at. */
  offset?: bigint;
  /** Stop once no message came for this long (another consumer took the rest). */
  idleTimeout?: number;
  /** Messages ready in a queue when kmq started (not for a stream). */
  atStart?: number;
}

/** A queue with --exit-at-end stops when no message came for this long: the rest went elsewhere. */
const QUEUE_QUIET_S = 1;

export async function readingWindow(
  client: AMQPClient,
  queue: string,
  ask: WindowAsk,
  broker: BrokerOptions,
): Promise<ReadingWindow> {
  const type = (await queueFacts(client, queue, broker)).type;
  if (type !== "stream") {
    if (ask.last !== undefined || ask.until !== undefined) {
      throw new UsageError(
        `${
          ask.last !== undefined ? "--last" : "--until"
        } reads a stream: queue '${queue}' is a ${type} queue ` +
          "(use --exit-at-end to read what it holds now, -n for a number)",
      );
    }
    const ch = await client.channel();
    const messageCount = await readyCount(ch, queue, { quorum: type === "quorum" });
    await ch.close();
    const count = Math.min(ask.count ?? Infinity, messageCount);
    return { empty: count === 0, count, idleTimeout: QUEUE_QUIET_S, atStart: messageCount };
  }
  const last = await offsetAt(client, queue, "last", true);
  if (last === undefined) return { empty: true };
  let start: bigint | undefined;
  if (ask.last !== undefined) start = last - BigInt(ask.last) + 1n;
  else {
    const from = ask.offset ?? (ask.exitAtEnd || ask.until !== undefined ? "first" : "next");
    start = await offsetAt(client, queue, from, false);
  }
  if (start !== undefined && start < 0n) start = 0n;
  if (ask.last !== undefined && start !== undefined) {
    // retention may have removed the first of them: attach where the stream begins now
    start = (await offsetAt(client, queue, Number(start), false)) ?? start;
  }
  let end: bigint | undefined = ask.exitAtEnd ? last : undefined;
  if (ask.until !== undefined) {
    const at = await offsetAt(client, queue, ask.until, false);
    end = at === undefined ? last : at - 1n;
  }
  if (start === undefined) return { empty: end !== undefined };
  if (end === undefined) return { empty: false, offset: start, count: ask.count };
  if (end < start) return { empty: true };
  const span = Number(end - start + 1n);
  return { empty: false, offset: start, count: Math.min(ask.count ?? Infinity, span) };
}

/** How long a probe waits for the broker's first delivery before taking the stream as empty there. */
const FIRST_MS = 500;
/** How long after the latest delivery a probe of the last chunk counts it as complete. */
const QUIET_MS = 300;
/**
 * A stream that producers keep adding to is never quiet: the probe of its end stops this long
 * after its first delivery (the last chunk comes in one burst; what follows is newer).
 */
const LAST_MS = 1000;

/**
 * The offset of the first message delivered from `spec` on (`wantLast`: the largest of the
 * chunk delivered, which from "last" is the stream's last offset); undefined when none comes.
 */
async function offsetAt(client: AMQPClient, queue: string, spec: unknown, wantLast: boolean) {
  const ch = await client.channel();
  let found: bigint | undefined;
  let latest = 0;
  try {
    await ch.prefetch(1000);
    await ch.basicConsume(queue, { noAck: false, args: { "x-stream-offset": spec } }, (msg: AMQPMessage) => {
      const offset = offsetOf(msg);
      if (offset !== undefined && (found === undefined || (wantLast && offset > found))) found = offset;
      latest = Date.now();
      msg.ack().catch(() => {}); // a stream's acks are only credit: more of the chunk comes
    });
    const started = Date.now();
    let firstAt = 0;
    while (true) {
      await new Promise((r) => setTimeout(r, 20));
      if (found === undefined) {
        if (Date.now() - started > FIRST_MS) break;
        continue;
      }
      firstAt ||= Date.now();
      if (!wantLast || Date.now() - latest > QUIET_MS || Date.now() - firstAt > LAST_MS) break;
    }
  } finally {
    await ch.close().catch(() => {});
  }
  return found;
}

function offsetOf(msg: AMQPMessage): bigint | undefined {
  const raw = msg.properties.headers?.["x-stream-offset"] as unknown;
  const v = raw instanceof TypedField ? raw.value : raw;
  return typeof v === "bigint" ? v : typeof v === "number" ? BigInt(v) : undefined;
}
