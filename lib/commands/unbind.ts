/**
 * `kmq unbind -e EXCHANGE -q QUEUE` (or `-e EXCHANGE --bind-exchange SOURCE`): removes bindings,
 * having checked with the management API that each one exists — the broker ignores one that does
 * not without a word.
 */
import { type Command, Option } from "@commander-js/extra-typings";
import type { AMQPChannel } from "@cloudamqp/amqp-client";
import { type ArgumentTable, bindingArguments, parseArgument } from "../amqp/arguments.ts";
import {
  type BindingKey,
  type BindingTarget,
  describeBinding,
  existingBindings,
  sameBinding,
} from "../amqp/bindings.ts";
import { DEFAULTS } from "../amqp/declarations.ts";
import { attempt, existingExchange, existingQueue, type OperateIo, operateOnce } from "../amqp/entities.ts";
import { ExitCode, KmqError, UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { write } from "../term/output.ts";
import { collectKeys, type Done, type GlobalOptions, globalsOf, shortString } from "./options.ts";

export interface UnbindOptions extends GlobalOptions {
  /** The source exchange: the one whose messages stop going to `target`. */
  source: string;
  target: BindingTarget;
  keys: string[];
  args: Record<string, unknown>;
}

export function cmdUnbind(o: UnbindOptions, io: OperateIo): Promise<void> {
  return operateOnce(o, "unbind", io, async (client) => {
    await existingExchange(client, o.source, "unbind", { ownAllowed: true });
    const ch: AMQPChannel = o.target.kind === "queue"
      ? await existingQueue(client, o.target.name, "unbind")
      : await existingExchange(client, o.target.name, "unbind", { ownAllowed: true });
    const wanted = o.keys.map((key) => ({ key, args: o.args }));
    await checkBindingsExist(o, wanted, io.log);
    const what = `${o.target.kind} '${o.target.name}' from exchange '${o.source}'`;
    for (const key of o.keys) {
      await attempt(
        `unbinding ${what} (key '${key}')`,
        () =>
          o.target.kind === "queue"
            ? ch.queueUnbind(o.target.name, o.source, key, o.args)
            : ch.exchangeUnbind(o.target.name, o.source, key, o.args),
      );
      await write(io.stdout, new TextEncoder().encode(`unbound ${what} (key '${key}')\n`));
    }
    return undefined;
  });
}

/** Exit 6, before anything is removed, when a binding asked for is not there; names what is. */
async function checkBindingsExist(o: UnbindOptions, wanted: BindingKey[], log: Log): Promise<void> {
  const existing = await existingBindings(o.broker, o.source, o.target, log);
  if (existing === undefined) return;
  const absent = wanted.filter((w) => !existing.some((e) => sameBinding(e, w)));
  if (absent.length === 0) return;
  const between = `exchange '${o.source}' and ${o.target.kind} '${o.target.name}'`;
  const there = existing.length === 0
    ? `there is no binding between ${between}`
    : `the binding(s) between ${between}: ${existing.map(describeBinding).join(", ")}`;
  throw new KmqError(
    ExitCode.brokerRefused,
    `no binding ${absent.map(describeBinding).join(", ")} to unbind; ${there}; nothing was unbound ` +
      "(give -r and --bind-arg/--match as it was bound)",
  );
}

export function defineUnbind(program: Command, done: Done): void {
  program.command("unbind")
    .description("remove a queue's (or an exchange's) binding to an exchange")
    .requiredOption("-e, --exchange <name>", "the exchange (with -q, the source)", shortString("--exchange"))
    .option("-q, --queue <name>", "the queue to unbind from -e", shortString("--queue"))
    .option(
      "--bind-exchange <source>",
      "unbind the exchange -e from this source exchange (as declare --bind-exchange bound it)",
      shortString("--bind-exchange"),
    )
    .option("-r, --routing-key <key>", "the binding's key (repeatable; default: test)", collectKeys)
    .option(
      "--bind-arg <key=value>",
      "the binding's arguments, as it was bound (repeatable)",
      (spec: string, into?: ArgumentTable) => parseArgument("--bind-arg", spec, into),
    )
    .addOption(new Option("--match <all|any>", "the binding's x-match").choices(["all", "any"]))
    .addHelpText(
      "after",
      `
Each binding is checked first with the management API (the broker ignores one that is not there):
one that does not exist is exit 6, naming the ones that do, and nothing is unbound.

Examples:
  kmq unbind -e test_exchange -q queue                  # the tutorial's binding (key test)
  kmq unbind -e events -q audit -r 'order.*' -r 'user.*'
  kmq unbind -e audit --bind-exchange events -r '#'     # events -> audit, as declare made it`,
    )
    .action((o, cmd) => {
      if ((o.queue === undefined) === (o.bindExchange === undefined)) {
        throw new UsageError(
          "give -q QUEUE (unbind the queue from -e) or --bind-exchange SOURCE (unbind -e from SOURCE), one of them",
        );
      }
      const target: BindingTarget = o.queue !== undefined
        ? { kind: "queue", name: o.queue }
        : { kind: "exchange", name: o.exchange };
      const options: UnbindOptions = {
        ...globalsOf(cmd),
        source: o.bindExchange ?? o.exchange,
        target,
        keys: o.routingKey ?? [DEFAULTS.routingKey],
        args: bindingArguments(o.bindArg, o.match),
      };
      done({
        kind: "run",
        verbose: options.verbose,
        run: (io) => cmdUnbind(options, { stdout: io.stdout(), log: io.log }),
      });
    });
}
