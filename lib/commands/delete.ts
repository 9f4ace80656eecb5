/** `kmq delete queue NAME` and `kmq delete exchange NAME`: each deletes one entity that exists. */
import type { Command } from "@commander-js/extra-typings";
import { attempt, existingExchange, existingQueue, type OperateIo, operateOnce } from "../amqp/entities.ts";
import { queueFacts } from "../amqp/queue-facts.ts";
import { ExitCode, KmqError } from "../term/errors.ts";
import { type Done, type GlobalOptions, globalsOf, shortString } from "./options.ts";

export interface DeleteQueueOptions extends GlobalOptions {
  queue: string;
  ifEmpty: boolean;
  ifUnused: boolean;
}

export interface DeleteExchangeOptions extends GlobalOptions {
  exchange: string;
  ifUnused: boolean;
}

export function deleteQueue(o: DeleteQueueOptions, io: OperateIo): Promise<void> {
  return operateOnce(o, "delete", io, async (client) => {
    const ch = await existingQueue(client, o.queue, "delete");
    if (o.ifEmpty && (await queueFacts(client, o.queue, o.broker)).type === "stream") {
      throw new KmqError(
        ExitCode.brokerRefused,
        `queue '${o.queue}' is a stream: the broker does not count a stream's messages, so --if-empty ` +
          "cannot be checked; look with 'kmq peek', then delete it without --if-empty",
      );
    }
    const { messageCount } = await attempt(
      `deleting queue '${o.queue}'`,
      () => ch.queueDelete(o.queue, { ifEmpty: o.ifEmpty, ifUnused: o.ifUnused }),
      o.ifEmpty
        ? "it is not empty: purge it first, or drop --if-empty"
        : "it has consumers: stop them, or drop --if-unused",
    );
    return `deleted queue '${o.queue}' (${messageCount} message(s) with it)`;
  });
}

export function deleteExchange(o: DeleteExchangeOptions, io: OperateIo): Promise<void> {
  return operateOnce(o, "delete", io, async (client) => {
    const ch = await existingExchange(client, o.exchange, "delete");
    await attempt(
      `deleting exchange '${o.exchange}'`,
      () => ch.exchangeDelete(o.exchange, { ifUnused: o.ifUnused }),
      "it has bindings: unbind them first, or drop --if-unused",
    );
    return `deleted exchange '${o.exchange}'`;
  });
}

export function defineDelete(program: Command, done: Done): void {
  const remove = program.command("delete").description("delete a queue or an exchange");
  remove.command("queue")
    .description("delete a queue, and the messages in it")
    .argument("<name>", "the queue", shortString("the queue name"))
    .option("--if-empty", "only if it holds no messages", false)
    .option("--if-unused", "only if it has no consumers", false)
    .action((queue, o, cmd) => {
      const options: DeleteQueueOptions = {
        ...globalsOf(cmd),
        queue,
        ifEmpty: o.ifEmpty,
        ifUnused: o.ifUnused,
      };
      done({
        kind: "run",
        verbose: options.verbose,
        run: (io) => deleteQueue(options, { stdout: io.stdout(), log: io.log }),
      });
    });
  remove.command("exchange")
    .description("delete an exchange")
    .argument("<name>", "the exchange", shortString("the exchange name"))
    .option("--if-unused", "only if nothing is bound to it", false)
    .action((exchange, o, cmd) => {
      const options: DeleteExchangeOptions = { ...globalsOf(cmd), exchange, ifUnused: o.ifUnused };
      done({
        kind: "run",
        verbose: options.verbose,
        run: (io) => deleteExchange(options, { stdout: io.stdout(), log: io.log }),
      });
    });
}
