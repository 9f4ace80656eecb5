/**
 * A whole move over the source's connections: each pass (source-pass.ts) runs until the source is
 * done or its connection drops; a drop is reconnected within --retry-timeout, and messages found
 * in the source as the move ended are moved too.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { brokerIdentity } from "../amqp/client-fixes.ts";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { guardRequeues, queueFacts } from "../amqp/queue-facts.ts";
import { readyCount } from "../amqp/ready-count.ts";
import { classifyError, DeliveryError, ExitCode, KmqError, UsageError } from "../term/errors.ts";
import type { MoveIo, MoveOptions } from "./move-options.ts";
import { type MoveRun, SourceLost, SourceNotEmpty, SourcePass } from "./source-pass.ts";

/** How often a move that found messages left at its end takes up moving again before it says so. */
const MAX_RESUMES = 3;

/**
 * Consumes the source until -n, idle or empty, handing each message to the publisher; a lost
 * source connection is reconnected within --retry-timeout.
 */
export async function moveAll(run: MoveRun): Promise<void> {
  const { o, io, moved } = run;
  let lostAt: number | undefined;
  let resumes = 0;
  for (;;) {
    let client: AMQPClient;
    try {
      client = await connect({ broker: o.broker, name: "kmq move", log: io.log });
    } catch (err) {
      const e = err instanceof KmqError ? err : classifyError(err, "connecting to the source");
      if (lostAt === undefined || e.exitCode !== ExitCode.unreachable) throw e;
      if (Date.now() - lostAt > o.retryTimeout * 1000 || io.stop.aborted) throw e;
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    try {
      await new SourcePass(client, run).go();
      return;
    } catch (err) {
      if (err instanceof SourceNotEmpty) {
        // a count of 0 is not proof: a quorum queue electing a leader can report it
        if (++resumes > MAX_RESUMES) {
          throw new DeliveryError(
            `${err.left} message(s) are still in queue '${o.from}' though it was found empty ${
              MAX_RESUMES + 1
            } ` +
              "times (messages keep arriving, or the queue's count is unreliable now): run the move again",
          );
        }
        io.log.info(`${err.left} message(s) appeared in queue '${o.from}' as the move ended: moving on`);
        continue;
      }
      if (!(err instanceof SourceLost)) throw err;
      lostAt ??= Date.now();
      moved.counted.reconnected();
      io.log.warn(`the source connection was lost (${err.message}): reconnecting`);
    } finally {
      await closeQuietly(client);
    }
  }
}

/**
 * Checks that the source queue exists; the broker and vhost it is on ({@link brokerIdentity}) and
 * how many messages are ready in it now.
 */
export async function checkSource(
  o: MoveOptions,
  io: MoveIo,
  holds?: string,
): Promise<{ identity: string; ready: number; quorum: boolean }> {
  const client = await connect({ broker: o.broker, name: "kmq move", log: io.log });
  try {
    const ch = await client.channel();
    await ch.queueDeclare(o.from, { passive: true }).catch((err) => {
      throw new KmqError(ExitCode.brokerRefused, `queue '${o.from}' does not exist: nothing to move`, {
        cause: classifyError(err, "checking the source"),
      });
    });
    await ch.close(); // one channel at a time: a URL may allow no more (channelMax)
    // `holds`: what may leave messages in the source, which go back (and count, on a quorum queue)
    const facts = holds
      ? await guardRequeues(client, o.from, o.broker, holds, o.acceptDeliveryCount, io.log)
      : await queueFacts(client, o.from, o.broker);
    const quorum = facts.type === "quorum";
    const counting = await client.channel();
    const ready = await readyCount(counting, o.from, { quorum }, o.retryTimeout * 1000);
    await counting.close();
    if (facts.type === "stream") {
      throw new UsageError(
        `queue '${o.from}' is a stream: a move cannot take messages out of it (a stream keeps them for every ` +
          `reader); copy them instead: kmq consume -q ${o.from} --queue-type stream --offset first -o json | ` +
          "kmq produce --jsonl …",
      );
    }
    return { identity: brokerIdentity(client), ready, quorum };
  } finally {
    await closeQuietly(client);
  }
}
