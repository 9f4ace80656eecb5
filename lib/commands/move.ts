/**
 * `kmq move --from SRC --to DST`: consumes from one queue and publishes to a queue (through the
 * default exchange) or an exchange, possibly on another broker, acking each source message only
 * once the target confirmed it. A crash anywhere leaves the message in the source (then possibly
 * in both: at-least-once, never lost). Bodies, properties and typed headers are kept byte for
 * byte unless --set-header / --drop-header say otherwise.
 */
import type { Command } from "@commander-js/extra-typings";
import { brokerIdentity } from "../amqp/client-fixes.ts";
import { topologyFrom } from "../amqp/declarations.ts";
import { boundStop, Publisher } from "../amqp/publisher.ts";
import type { Sieve } from "../messages/filter.ts";
import { TakenCount } from "../messages/taken-count.ts";
import { checkSource, moveAll } from "../move/move-all.ts";
import type { Moved, MoveIo, MoveOptions } from "../move/move-options.ts";
import { PREFETCH } from "../move/source-pass.ts";
import { ExitCode, KmqError, UsageError } from "../term/errors.ts";
import { liveLine, perSecond } from "../term/progress.ts";
import type { FieldTable } from "../messages/fields.ts";
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

export type { MoveIo, MoveOptions } from "../move/move-options.ts";

export async function cmdMove(o: MoveOptions, io: MoveIo): Promise<void> {
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
  const { publisher, sameBroker } = await openTarget(o, io, source);
  const moved: Moved = {
    taken: 0,
    counted: new TakenCount(2 * PREFETCH),
    confirmed: 0,
    failed: 0,
    started: performance.now(),
  };
  const clearProgress = liveLine(io.stderr, () => {
    const rate = perSecond(moved.confirmed, moved.started);
    return [
      `kmq: moved ${moved.confirmed} message(s) (${rate} msg/s)`,
      `kmq: moved ${moved.confirmed}, ${rate}/s`,
    ];
  });
  const stopTimer = boundStop(publisher, o.stopTimeout, io.stop);
  try {
    // through the default exchange with each message's own key, a key naming the source loops
    const loopsBack = sameBroker && o.toExchange === "" && o.routingKey === undefined;
    await moveAll({ o, io, publisher, moved, sieve, loopsBack });
    await publisher.drain();
  } finally {
    stopTimer.dispose();
    clearProgress();
    await publisher.close();
    report(o, io, moved, sieve);
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

/**
 * The publisher to the target, open; whether the target is on the source's broker and vhost
 * (`source`, its identity), where a target that is the source itself is refused.
 */
async function openTarget(
  o: MoveOptions,
  io: MoveIo,
  source: string,
): Promise<{ publisher: Publisher; sameBroker: boolean }> {
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
  return { publisher, sameBroker };
}

/** The closing line: how many moved, at what rate, and what --filter left behind. */
function report(o: MoveOptions, io: MoveIo, moved: Moved, sieve: Sieve | undefined): void {
  const target = o.to ?? o.toExchange!;
  const rate = perSecond(moved.confirmed, moved.started);
  const left = sieve ? `; ${sieve.unmatched} did not match --filter and stay in '${o.from}'` : "";
  io.log.warn(
    `moved ${moved.confirmed} message(s) from queue '${o.from}' to '${target}' (${rate} msg/s)${left}`,
  );
  if (sieve && sieve.filter.errors > 0) {
    io.log.info(
      `--filter could not be evaluated on ${sieve.filter.errors} message(s) (left in the source), the first: ${sieve.filter.firstError}`,
    );
  }
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
      const options = moveOptionsFrom(o, globalsOf(cmd));
      done({
        kind: "run",
        verbose: options.verbose,
        run: async (io) => cmdMove(options, { log: io.log, stop: io.stop(), stderr: await io.stderr() }),
      });
    });
}

/** What move parsed, checked (exit 2 naming the problem) and mapped to its options. */
function moveOptionsFrom(
  o: {
    from: string;
    to?: string;
    toExchange?: string;
    routingKey?: string;
    toUrl?: string;
    count?: number;
    idleTimeout?: number;
    setHeader: FieldTable;
    dropHeader?: string[];
    retryTimeout: number;
    stopTimeout: number;
    filter?: string;
    acceptDeliveryCount?: true;
    rate?: number;
  },
  g: GlobalOptions,
): MoveOptions {
  if ((o.to === undefined) === (o.toExchange === undefined)) {
    throw new UsageError("give the target: --to QUEUE or --to-exchange EXCHANGE (one of them)");
  }
  if (o.routingKey !== undefined && o.to !== undefined) {
    throw new UsageError("-r goes with --to-exchange: --to QUEUE routes by the queue's name");
  }
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
  return options;
}
