/**
 * How many messages a queue holds ready, as `queue.declare` (passive) tells — and when its answer
 * cannot be taken at its word. RabbitMQ asks a quorum queue's leader for the count with a 250 ms
 * limit and, when the leader does not answer (frozen, cut off from the node, being elected),
 * answers "0 messages, 0 consumers" instead of failing. Read as "empty", that ended a move with
 * most of its queue left in it (tests/faults/cluster_faults.ts, scenario 19b).
 */
import type { AMQPChannel } from "@cloudamqp/amqp-client";
import { ExitCode, KmqError } from "../term/errors.ts";

/** A "0, 0" answer this slow is RabbitMQ's stand-in for a leader that did not answer in 250 ms. */
const STAND_IN_MS = 200;
/** How long a command waits for a silent queue to answer before it gives up. */
export const SILENT_WAIT_MS = 10_000;

/** What is known of the queue when it is asked. */
export interface Asking {
  /** kmq consumes from it now: a consumer count of 0 cannot be true. */
  consuming?: boolean;
  /** It is a quorum queue: a slow "0, 0" is the leader's silence. */
  quorum?: boolean;
}

/** The queue's ready count, or undefined when the answer is the stand-in for a silent leader. */
export async function askReady(ch: AMQPChannel, queue: string, asking: Asking): Promise<number | undefined> {
  const asked = performance.now();
  const { messageCount, consumerCount } = await ch.queueDeclare(queue, { passive: true });
  const slow = performance.now() - asked >= STAND_IN_MS;
  if (messageCount === 0 && consumerCount === 0 && (asking.consuming || (asking.quorum && slow))) {
    return undefined;
  }
  return messageCount;
}

/**
 * A queue that did not answer for its count: exit 4, but not a lost connection — reconnecting
 * does not make its leader answer, so a consumer does not retry it.
 */
export class SilentQueue extends KmqError {
  constructor(queue: string, waitedMs: number) {
    super(
      ExitCode.unreachable,
      `queue '${queue}' did not answer for its count in ${Math.round(waitedMs / 1000)} s (a quorum ` +
        "queue whose leader is unreachable or being elected): run the command again once it answers",
    );
    this.name = "SilentQueue";
  }
}

/**
 * The queue's ready count, asked again every half second while the answer is a silent leader's
 * stand-in; past `waitMs` a KmqError (exit 4) naming the queue: a command never reads that
 * silence as an empty queue.
 */
export async function readyCount(
  ch: AMQPChannel,
  queue: string,
  asking: Asking,
  waitMs = SILENT_WAIT_MS,
): Promise<number> {
  const until = Date.now() + waitMs;
  for (;;) {
    const ready = await askReady(ch, queue, asking);
    if (ready !== undefined) return ready;
    if (Date.now() >= until) throw new SilentQueue(queue, waitMs);
    await new Promise((r) => setTimeout(r, 500));
  }
}
