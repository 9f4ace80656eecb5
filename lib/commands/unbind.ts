/** `kmq unbind -e EXCHANGE -q QUEUE`: removes the queue's binding(s) and says so for each key. */
import { type Command, Option } from "@commander-js/extra-typings";
import { type ArgumentTable, bindingArguments, parseArgument } from "../amqp/arguments.ts";
import { DEFAULTS } from "../amqp/declarations.ts";
import { attempt, existingExchange, existingQueue, type OperateIo, operateOnce } from "../amqp/entities.ts";
import { write } from "../term/output.ts";
import { collectKeys, type Done, type GlobalOptions, globalsOf, shortString } from "./options.ts";

export interface UnbindOptions extends GlobalOptions {
  exchange: string;
  queue: string;
  keys: string[];
  args: Record<string, unknown>;
}

export function cmdUnbind(o: UnbindOptions, io: OperateIo): Promise<void> {
  return operateOnce(o, "unbind", io, async (client) => {
    await existingExchange(client, o.exchange, "unbind");
    const ch = await existingQueue(client, o.queue, "unbind");
    for (const key of o.keys) {
      await attempt(
        `unbinding queue '${o.queue}' from exchange '${o.exchange}' (key '${key}')`,
        () => ch.queueUnbind(o.queue, o.exchange, key, o.args),
      );
      await write(
        io.stdout,
        new TextEncoder().encode(`unbound queue '${o.queue}' from exchange '${o.exchange}' (key '${key}')\n`),
      );
    }
    return undefined;
  });
}

export function defineUnbind(program: Command, done: Done): void {
  program.command("unbind")
    .description("remove a queue's binding to an exchange")
    .requiredOption("-e, --exchange <name>", "the exchange", shortString("--exchange"))
    .requiredOption("-q, --queue <name>", "the queue", shortString("--queue"))
    .option("-r, --routing-key <key>", "the binding's key (repeatable; default: test)", collectKeys)
    .option(
      "--bind-arg <key=value>",
      "the binding's arguments, as it was bound (repeatable)",
      (spec: string, into?: ArgumentTable) => parseArgument("--bind-arg", spec, into),
    )
    .addOption(new Option("--match <all|any>", "the binding's x-match").choices(["all", "any"]))
    .action((o, cmd) => {
      const options: UnbindOptions = {
        ...globalsOf(cmd),
        exchange: o.exchange,
        queue: o.queue,
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
