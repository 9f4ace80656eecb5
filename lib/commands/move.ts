/**
 * `kmq move --from SRC --to DST`: consumes from one queue and publishes to a queue (through the
 * default exchange) or an exchange, possibly on another broker, acking each source message only
 * once the target confirmed it. A crash anywhere leaves the message in the source (then possibly
 * in both: at-least-once, never lost). Bodies, properties and typed headers are kept byte for
 * byte unless --set-header / --drop-header say otherwise.
 */
import type { Command } from "@commander-js/extra-typings";
import type { FieldTable } from "../messages/fields.ts";
import type { MoveIo, MoveOptions } from "../move/move-options.ts";
import { runMove } from "../move/run-move.ts";
import { UsageError } from "../term/errors.ts";
import {
  collect,
  type Done,
  type GlobalOptions,
  globalsOf,
  integer,
  parseHeader,
  positive,
  retryAndStopOptions,
  seconds,
  shortString,
} from "./options.ts";

export type { MoveIo, MoveOptions } from "../move/move-options.ts";

/** `kmq move`: the run lives in move/run-move.ts (kmq redrive runs it too). */
export function cmdMove(o: MoveOptions, io: MoveIo): Promise<void> {
  return runMove(o, io);
}

/** `kmq move`: its options, checks, help and examples. */
export function defineMove(program: Command, done: Done): void {
  retryAndStopOptions(
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
      .option("--exit-at-end", "move what the source holds now and stop: messages arriving meanwhile stay")
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
      .option("--rate <msgs/s>", "move at most this many messages per second", positive("--rate")),
    "after Ctrl-C or SIGTERM, wait this long for the target's confirms (then exit 7; unconfirmed stay in the source)",
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
    exitAtEnd?: true;
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
    exitAtEnd: o.exitAtEnd === true,
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
