import { closeQuietly, connect } from "../amqp/connection.ts";
import { declareTopology, topologyFrom } from "../amqp/declarations.ts";
import type { Log } from "../term/log.ts";
import type { Command } from "@commander-js/extra-typings";
import type { QueueArgumentOptions } from "../amqp/arguments.ts";
import { DEFAULTS, type ExchangeType, type TopologyOptions } from "../amqp/declarations.ts";
import {
  collect,
  collectKeys,
  type Done,
  type GlobalOptions,
  globalsOf,
  queueOnly,
  shortString,
  topologyArguments,
  topologyOptions,
} from "./options.ts";

/** `kmq declare`: the topology produce and consume would declare, for setup scripts. */
export async function cmdDeclare(o: DeclareOptions, log: Log): Promise<void> {
  const client = await connect({ broker: o.broker, name: "kmq declare", log });
  try {
    await declareTopology(client, topologyFrom(o.topology), log, { broker: o.broker });
  } finally {
    await closeQuietly(client);
  }
}

export interface DeclareOptions extends GlobalOptions {
  topology: TopologyOptions;
}

/** `kmq declare`: the topology options, --bind-exchange, help and examples. */
export function defineDeclare(program: Command, done: Done): void {
  topologyOptions(
    program.command("declare").description(
      "declare the exchange, queue and bindings (the same options as consume) and exit",
    ),
  )
    .option(
      "-q, --queue <name>",
      "queue to declare ('' = none)",
      shortString("--queue"),
      DEFAULTS.queue as string,
    )
    .option("-r, --routing-key <key>", "bind with this key (repeatable; default: test)", collectKeys)
    .option(
      "--bind-exchange <source>",
      "also bind the exchange (-e) to this source exchange with each -r key (repeatable)",
      (value: string, previous: string[] | undefined) =>
        collect(shortString("--bind-exchange")(value), previous),
    )
    .addHelpText(
      "after",
      `
Examples:
  kmq declare                                   # the tutorial's test_exchange, queue and binding
  kmq declare -e audit -t fanout -q audit --bind-exchange events -r '#'   # events -> audit -> queue
  kmq declare -e jobs -q jobs -r jobs           # a direct exchange, a queue, one binding
  kmq declare -e events -t topic -q audit -r 'order.*' -r 'user.*'
  kmq declare -e logs -t fanout -q ''           # only the exchange
  kmq declare -q work                           # only the queue (bound to nothing)`,
    )
    .action((o, cmd) => {
      const g = globalsOf(cmd);
      const options: DeclareOptions = {
        broker: g.broker,
        verbose: g.verbose,
        topology: {
          exchange: queueOnly(cmd) ? "" : o.exchange,
          exchangeType: o.exchangeType as ExchangeType,
          queue: o.queue === "" ? undefined : o.queue,
          bindingKeys: o.routingKey ?? [DEFAULTS.routingKey],
          durable: o.durable,
          autoDelete: o.autoDelete,
          exclusive: o.exclusive,
          declare: true,
          ...topologyArguments(o as QueueArgumentOptions, cmd),
          exchangeSources: o.bindExchange ?? [],
        },
      };
      done({ kind: "run", verbose: options.verbose, run: (io) => cmdDeclare(options, io.log) });
    });
}
