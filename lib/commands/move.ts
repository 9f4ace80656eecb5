/**
 * `kmq move --from SRC --to DST`: consumes from one queue and publishes to a queue (through the
 * default exchange) or an exchange, possibly on another broker, acking each source message only
 * once the target confirmed it. A crash anywhere leaves the message in the source (then possibly
 * in both: at-least-once, never lost). Bodies, properties and typed headers are kept byte for
 * byte unless --set-header / --drop-header say otherwise.
 */
import type { AMQPChannel, AMQPClient, AMQPMessage, AMQPProperties } from "@cloudamqp/amqp-client";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { topologyFrom } from "../amqp/declarations.ts";
import { classifyError, DeliveryError, ExitCode, KmqError, UsageError } from "../term/errors.ts";
import type { FieldTable } from "../messages/fields.ts";
import type { Log } from "../term/log.ts";
import { boundStop, Publisher } from "../amqp/publisher.ts";
import type { BrokerOptions } from "../amqp/connection.ts";
import type { MessageProperties } from "../amqp/wire.ts";
import type { Sieve } from "../messages/filter.ts";
import { liveLine, pace, perSecond, type ProgressStream } from "../term/progress.ts";
import { SourceConsumer } from "../amqp/source-consumer.ts";
import { TakenCount } from "../messages/taken-count.ts";
import { brokerIdentity } from "../amqp/client-fixes.ts";
import { timestampOf } from "../messages/timestamp.ts";
import { guardRequeues, queueFacts } from "../amqp/queue-facts.ts";
import type { Command } from "@commander-js/extra-typings";
import {
  collect,
  type Done,
  type GlobalOptions,
  globalsOf,
  integer,
  parseHeader,
  positive,
  seconds,
  shortString,
} from "./options.ts";

export interface MoveOptions extends GlobalOptions {
  from: string;
  /** A queue, reached through the default exchange; or undefined with `toExchange`. */
  to?: string;
  toExchange?: string;
  /** The routing key for --to-exchange; undefined keeps each message's own. */
  routingKey?: string;
  toBroker: BrokerOptions;
  count?: number;
  /** Seconds without a message before stopping; undefined: stop once the source is empty. */
  idleTimeout?: number;
  setHeaders: FieldTable;
  dropHeaders: string[];
  retryTimeout: number;
  /** After a stop signal, seconds to wait for the target's confirms of what is in flight. */
  stopTimeout: number;
  /** Messages per second at most. */
  rate?: number;
  /** A CEL condition: only matching messages move; the others stay in the source. */
  filter?: string;
  /** --filter may leave messages in a quorum queue whose delivery limit counts their return. */
  acceptDeliveryCount: boolean;
}

export interface MoveIo {
  log: Log;
  stop: AbortSignal;
  /** A live progress line goes here when it is a terminal. */
  stderr: ProgressStream;
}

const PREFETCH = 500;
/** How long without a delivery before asking whether the source is empty. */
const QUIET_MS = 500;

export async function cmdMove(o: MoveOptions, io: MoveIo): Promise<void> {
  const target = o.to ?? o.toExchange!;
  if (o.to === o.from && o.toBroker.url === o.broker.url) {
    throw new UsageError(`--from and --to are the same queue '${o.from}': nothing would move`);
  }
  // compiled before connecting: a bad expression is exit 2 with nothing touched
  const sieve: Sieve | undefined = o.filter === undefined ? undefined : {
    filter: new (await import("../messages/filter.ts")).MessageFilter(o.filter),
    hold: true,
    unmatched: 0,
  };
  // the source is checked first: a missing one creates no target queue and moves nothing
  const source = await checkSource(o, io, sieve !== undefined);
  const publisher = new Publisher({
    broker: o.toBroker,
    topology: topologyFrom({
      exchange: o.toExchange ?? "",
      exchangeType: "direct",
      queue: o.to,
      bindingKeys: [],
      durable: true,
      autoDelete: false,
      exclusive: false,
      // an exchange is never created by a move: it must exist; a target queue is declared if missing
      declare: o.to !== undefined,
    }),
    mandatory: true,
    confirm: true,
    retryTimeout: o.retryTimeout,
    log: io.log,
  });
  await publisher.open().catch((err: KmqError) => {
    if (o.toExchange === undefined || !/NOT_FOUND/.test(err.message)) throw err;
    throw new KmqError(
      ExitCode.brokerRefused,
      `the target exchange '${o.toExchange}' does not exist: a move creates no exchange; declare it first (kmq declare -e ${o.toExchange} …)`,
    );
  });
  const sameBroker = publisher.connection !== undefined && brokerIdentity(publisher.connection) === source;
  if (sameBroker && (o.to ?? (o.toExchange === "" ? o.routingKey : undefined)) === o.from) {
    await publisher.close();
    throw new UsageError(
      `the target is the source: queue '${o.from}' on the same broker and vhost (however the URLs are ` +
        `spelled): nothing would move; name another queue or exchange`,
    );
  }
  const moved: Moved = {
    taken: 0,
    counted: new TakenCount(2 * PREFETCH),
    confirmed: 0,
    failed: 0,
    started: performance.now(),
  };
  const clearProgress = liveLine(
    io.stderr,
    () => {
      const rate = perSecond(moved.confirmed, moved.started);
      return [
        `kmq: moved ${moved.confirmed} message(s) (${rate} msg/s)`,
        `kmq: moved ${moved.confirmed}, ${rate}/s`,
      ];
    },
  );
  const stopTimer = boundStop(publisher, o.stopTimeout, io.stop);
  try {
    // through the default exchange with each message's own key, a key naming the source loops
    const loopsBack = sameBroker && o.toExchange === "" && o.routingKey === undefined;
    await moveAll(o, io, publisher, moved, sieve, loopsBack);
    await publisher.drain();
  } finally {
    stopTimer.dispose();
    clearProgress();
    await publisher.close();
    io.log.warn(
      `moved ${moved.confirmed} message(s) from queue '${o.from}' to '${target}' (${
        perSecond(moved.confirmed, moved.started)
      } msg/s)${sieve ? `; ${sieve.unmatched} did not match --filter and stay in '${o.from}'` : ""}`,
    );
    if (sieve && sieve.filter.errors > 0) {
      io.log.info(
        `--filter could not be evaluated on ${sieve.filter.errors} message(s) (left in the source), the first: ${sieve.filter.firstError}`,
      );
    }
  }
  publisher.check();
  if (io.stop.aborted) {
    const signal = String(io.stop.reason);
    throw new KmqError(
      signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated,
      `stopped by ${signal}: moved ${moved.confirmed} message(s); the rest stay in queue '${o.from}'`,
    );
  }
}

/** Messages taken from the source, confirmed by the target, and refused by it. */
interface Moved {
  taken: number;
  /** What -n counts: a message redelivered after a lost source connection counts once. */
  counted: TakenCount;
  confirmed: number;
  failed: number;
  /** Which message the target refused first, for the report. */
  firstRefused?: string;
  /** When the move started (performance.now()), for the rate. */
  started: number;
}

/** The source connection dropped: reconnect and go on (its unacked messages come again). */
class SourceLost extends Error {}

/** The move found the source empty, yet messages were ready in it once the consumer was gone. */
class SourceNotEmpty extends Error {
  constructor(readonly left: number) {
    super(`${left} message(s) ready`);
  }
}

/** How often a move that found messages left at its end takes up moving again before it says so. */
const MAX_RESUMES = 3;
/** The second look at an empty source comes this long after the first, with nothing delivered between. */
const CONFIRM_EMPTY_MS = 1_000;

/**
 * Consumes the source until -n, idle or empty, handing each message to the publisher; a lost
 * source connection is reconnected within --retry-timeout.
 */
async function moveAll(
  o: MoveOptions,
  io: MoveIo,
  publisher: Publisher,
  moved: Moved,
  sieve: Sieve | undefined,
  loopsBack: boolean,
): Promise<void> {
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
      await moveFrom(client, o, io, publisher, moved, sieve, loopsBack);
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

async function moveFrom(
  client: AMQPClient,
  o: MoveOptions,
  io: MoveIo,
  publisher: Publisher,
  moved: Moved,
  sieve: Sieve | undefined,
  loopsBack: boolean,
): Promise<void> {
  let lost: Error | undefined;
  let failure: KmqError | undefined;
  let foundEmpty = false;
  let wake = () => {};
  client.ondisconnect = (err?: Error) => {
    lost = err ?? new Error("connection closed");
    wake();
  };
  const ch = await client.channel();
  try {
    await ch.queueDeclare(o.from, { passive: true });
  } catch (err) {
    throw new KmqError(ExitCode.brokerRefused, `queue '${o.from}' does not exist: nothing to move`, {
      cause: classifyError(err, "checking the source"),
    });
  }
  // held (non-matching) messages fill the window: -n must not shrink it to a renewal per message
  const window = o.count === undefined || sieve
    ? PREFETCH
    : Math.max(1, Math.min(PREFETCH, o.count - moved.counted.count));
  await ch.prefetch(window);
  const inbox: AMQPMessage[] = [];
  let lastDelivery = Date.now();
  const source = new SourceConsumer(ch, o.from, {
    window,
    sieve,
    deliver: (msg) => {
      lastDelivery = Date.now();
      inbox.push(msg);
      wake();
    },
    ended: (err) => {
      if (err instanceof KmqError) failure ??= err; // a filter that is not a condition
      else lost ??= err instanceof Error ? err : new Error("the broker cancelled the consumer");
      wake();
    },
  });
  await source.start();
  // a message the target refused goes back to the source and ends the move: taking it again
  // would only be refused again (a full queue, no binding, a deleted queue), for ever
  while (
    !io.stop.aborted && (o.count === undefined || moved.counted.count < o.count) && !publisher.failure &&
    !failure && moved.failed === 0
  ) {
    if (lost) throw new SourceLost(lost.message);
    const msg = inbox.shift();
    if (!msg) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, QUIET_MS);
      });
      if (inbox.length > 0 || lost) continue;
      // nothing comes while the prefetch window is full of messages awaiting the target's
      // confirms: wait for them (reconnecting the target if it dropped), which acks and frees it
      await publisher.drain();
      if (inbox.length > 0 || lost) continue;
      const quiet = Date.now() - lastDelivery;
      if (o.idleTimeout !== undefined) {
        if (quiet >= o.idleTimeout * 1000) break;
        continue;
      }
      if ((await readyIn(ch, o.from)) > 0) continue;
      // empty once: look again a moment later, with nothing delivered in between
      const mark = lastDelivery;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, CONFIRM_EMPTY_MS);
      });
      if (inbox.length > 0 || lost || lastDelivery !== mark || io.stop.aborted) continue;
      if ((await readyIn(ch, o.from)) === 0) {
        foundEmpty = true;
        break;
      }
      continue;
    }
    if (loopsBack && msg.routingKey === o.from) {
      await msg.nack(true).catch(() => {});
      failure = new DeliveryError(
        `message ${
          moved.taken + 1
        } has the routing key '${o.from}': through the default exchange it would go ` +
          `back into the source, so the move stopped there (it stays in '${o.from}'); give --routing-key or --to`,
      );
      break;
    }
    moved.taken++;
    if (o.count !== undefined) moved.counted.take(msg);
    if (o.rate !== undefined) await pace(moved.taken - 1, o.rate, moved.started);
    const taken = moved.taken;
    await publisher.publish({
      exchange: o.toExchange ?? "",
      routingKey: o.to ?? o.routingKey ?? msg.routingKey,
      properties: propertiesOf(msg.properties, o),
      body: msg.body ?? new Uint8Array(0),
      origin: `message ${taken}`,
      settled: (delivered) => {
        if (delivered) {
          moved.confirmed++;
          msg.ack().catch(() => {}); // a lost source connection redelivers it: a duplicate, not a loss
        } else {
          moved.failed++;
          moved.firstRefused ??= `message ${taken}${
            msg.properties.messageId ? ` (id '${msg.properties.messageId}')` : ""
          }`;
          msg.nack(true).catch(() => {});
        }
      },
    });
  }
  await source.cancel();
  for (const rest of inbox) await rest.nack(true).catch(() => {}); // prefetched, never published
  await publisher.drain(); // every ack is sent before the source connection closes
  if (failure) throw failure;
  if (lost) throw new SourceLost(lost.message);
  if (foundEmpty && moved.failed === 0) {
    // the last word on "empty" comes after the consumer is gone and every ack is in
    const left = await readyIn(ch, o.from);
    if (left > 0) throw new SourceNotEmpty(left);
  }
  if (moved.failed > 0) {
    const why = publisher.counts.nacked > 0 ? "nacked by the broker" : "returned as unroutable";
    throw new DeliveryError(
      `the target refused ${moved.failed} message(s) (the first, ${moved.firstRefused}, ${why}): ` +
        `the move stopped and they stay in queue '${o.from}'`,
    );
  }
}

/** Checks that the source queue exists; the broker and vhost it is on ({@link brokerIdentity}). */
async function checkSource(o: MoveOptions, io: MoveIo, holds: boolean): Promise<string> {
  const client = await connect({ broker: o.broker, name: "kmq move", log: io.log });
  try {
    const ch = await client.channel();
    await ch.queueDeclare(o.from, { passive: true }).catch((err) => {
      throw new KmqError(ExitCode.brokerRefused, `queue '${o.from}' does not exist: nothing to move`, {
        cause: classifyError(err, "checking the source"),
      });
    });
    await ch.close(); // one channel at a time: a URL may allow no more (channelMax)
    const facts = holds
      ? await guardRequeues(client, o.from, o.broker, "--filter", o.acceptDeliveryCount, io.log)
      : await queueFacts(client, o.from, o.broker);
    if (facts.type === "stream") {
      throw new UsageError(
        `queue '${o.from}' is a stream: a move cannot take messages out of it (a stream keeps them for every ` +
          `reader); copy them instead: kmq consume -q ${o.from} --queue-type stream --offset first -o json | ` +
          "kmq produce --jsonl …",
      );
    }
    return brokerIdentity(client);
  } finally {
    await closeQuietly(client);
  }
}

/** Messages ready in the queue, as the broker counts them now (asked on the consumer's channel). */
async function readyIn(ch: AMQPChannel, queue: string): Promise<number> {
  return (await ch.queueDeclare(queue, { passive: true })).messageCount;
}

/** The source message's properties as kmq publishes them, headers changed as asked. */
function propertiesOf(p: AMQPProperties, o: MoveOptions): MessageProperties {
  const headers = { ...(p.headers as FieldTable | undefined), ...o.setHeaders };
  for (const name of o.dropHeaders) delete headers[name];
  const out: MessageProperties = {
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    deliveryMode: p.deliveryMode,
    priority: p.priority,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    expiration: p.expiration,
    messageId: p.messageId,
    timestamp: timestampOf(p),
    type: p.type,
    userId: p.userId,
    appId: p.appId,
  };
  if (Object.keys(headers).length > 0) out.headers = headers;
  for (const key of Object.keys(out) as (keyof MessageProperties)[]) {
    if (out[key] === undefined) delete out[key];
  }
  return out;
}

/** `kmq move`: its options, checks, help and examples. */
export function defineMove(program: Command, done: Done): void {
  program.command("move")
    .description(
      "move messages from a queue to a queue or exchange, acking each once the target confirmed it",
    )
    .requiredOption("--from <queue>", "the source queue (must exist)", shortString("--from"))
    .option(
      "--to <queue>",
      "the target queue, through the default exchange (declared if missing)",
      shortString("--to"),
    )
    .option("--to-exchange <name>", "or the target exchange (must exist)", shortString("--to-exchange"))
    .option(
      "-r, --routing-key <key>",
      "with --to-exchange: this key (default: each message's own)",
      shortString("--routing-key"),
    )
    .option("--to-url <url>", "the target broker (default: the source's, --url)")
    .option("-n, --count <n>", "move at most n messages", integer("--count", 1, Number.MAX_SAFE_INTEGER))
    .option(
      "--idle-timeout <seconds>",
      "stop once no message came for this long (default: once the source is empty)",
      seconds("--idle-timeout"),
    )
    .option(
      "--set-header <key=value>",
      "set this header on each message; key:=json typed (repeatable)",
      parseHeader,
      {},
    )
    .option("--drop-header <name>", "remove this header, e.g. x-death (repeatable)", collect)
    .option("--filter <expr>", "move only messages this CEL condition is true for (the others stay)")
    .option(
      "--accept-delivery-count",
      "with --filter on a quorum queue with a delivery limit (RabbitMQ < 4.3): leave unmatched messages anyway",
    )
    .option("--rate <msgs/s>", "move at most this many messages per second", positive("--rate"))
    .option(
      "--retry-timeout <seconds>",
      "keep reconnecting this long when a connection drops",
      seconds("--retry-timeout"),
      60,
    )
    .option(
      "--stop-timeout <seconds>",
      "after Ctrl-C or SIGTERM, wait this long for the target's confirms (then exit 7; unconfirmed stay in the source)",
      seconds("--stop-timeout"),
      5,
    )
    .addHelpText(
      "after",
      `
Examples:
  kmq move --from orders.dlq --to orders --drop-header x-death     # drain a dead-letter queue back
  kmq move --from jobs --to-exchange jobs.v2 -r new -n 1000
  kmq move --from orders.dlq --to orders --filter 'json.amount > 100' --rate 200
  kmq move --from jobs --to jobs --to-url amqps://user@other-cluster/`,
    )
    .action((o, cmd) => {
      if ((o.to === undefined) === (o.toExchange === undefined)) {
        throw new UsageError("give the target: --to QUEUE or --to-exchange EXCHANGE (one of them)");
      }
      if (o.routingKey !== undefined && o.to !== undefined) {
        throw new UsageError("-r goes with --to-exchange: --to QUEUE routes by the queue's name");
      }
      const g = globalsOf(cmd);
      const options: MoveOptions = {
        ...g,
        from: o.from,
        to: o.to,
        toExchange: o.toExchange,
        routingKey: o.routingKey,
        toBroker: o.toUrl === undefined ? g.broker : { url: o.toUrl },
        count: o.count,
        idleTimeout: o.idleTimeout,
        setHeaders: o.setHeader,
        dropHeaders: o.dropHeader ?? [],
        retryTimeout: o.retryTimeout,
        stopTimeout: o.stopTimeout,
        filter: o.filter,
        acceptDeliveryCount: o.acceptDeliveryCount === true,
        rate: o.rate,
      };
      done({
        kind: "run",
        verbose: options.verbose,
        run: async (io) => cmdMove(options, { log: io.log, stop: io.stop(), stderr: await io.stderr() }),
      });
    });
}
