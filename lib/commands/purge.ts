/** `kmq purge QUEUE`: removes every ready message and says how many. */
import type { Command } from "@commander-js/extra-typings";
import { attempt, existingQueue, type OperateIo, operateOnce } from "../amqp/entities.ts";
import { queueFacts } from "../amqp/queue-facts.ts";
import { ExitCode, KmqError } from "../term/errors.ts";
import { type Done, type GlobalOptions, globalsOf, shortString } from "./options.ts";

export interface PurgeOptions extends GlobalOptions {
  queue: string;
}

export function cmdPurge(o: PurgeOptions, io: OperateIo): Promise<void> {
  return operateOnce(o, "purge", io, async (client) => {
    const ch = await existingQueue(client, o.queue, "purge");
    if ((await queueFacts(client, o.queue, o.broker)).type === "stream") {
      throw new KmqError(
        ExitCode.brokerRefused,
        `queue '${o.queue}' is a stream: streams cannot be purged (their retention, x-max-age and ` +
          "x-max-length-bytes, removes old messages); delete it instead",
      );
    }
    const { messageCount } = await attempt(`purging queue '${o.queue}'`, () => ch.queuePurge(o.queue));
    return `purged ${messageCount} message(s) from queue '${o.queue}'`;
  });
}

export function definePurge(program: Command, done: Done): void {
  program.command("purge")
    .description("remove every ready message from a queue and say how many")
    .argument("<queue>", "the queue", shortString("the queue name"))
    .action((queue, _o, cmd) => {
      const options: PurgeOptions = { ...globalsOf(cmd), queue };
      done({
        kind: "run",
        verbose: options.verbose,
        run: (io) => cmdPurge(options, { stdout: io.stdout(), log: io.log }),
      });
    });
}
