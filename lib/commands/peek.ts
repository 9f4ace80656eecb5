/**
 * `kmq peek -q QUEUE`: shows the first messages and puts them back. Nothing is acked, whatever
 * happens; a quorum queue that counts a put-back toward its delivery limit is refused unless
 * --accept-delivery-count, and a stream is read from its first offset.
 */
import type { AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import { type Command, Option } from "@commander-js/extra-typings";
import { attempt, existingQueue, type OperateIo, operateOnce } from "../amqp/entities.ts";
import { guardRequeues } from "../amqp/queue-facts.ts";
import { type Format, FORMATS, type MessagePrinter, printed } from "../messages/formats.ts";
import { ExitCode, KmqError } from "../term/errors.ts";
import { readerGone, write } from "../term/output.ts";
import { type Done, type GlobalOptions, globalsOf, integer, shortString } from "./options.ts";
import { TEMPLATE_HELP, templateFrom, templateOption } from "./template-option.ts";

export interface PeekOptions extends GlobalOptions {
  queue: string;
  count: number;
  format: Format;
  template?: MessagePrinter;
  acceptDeliveryCount: boolean;
}

export async function cmdPeek(o: PeekOptions, io: OperateIo): Promise<void> {
  try {
    await operateOnce(o, "peek", io, async (client) => {
      await existingQueue(client, o.queue, "peek at");
      const facts = await guardRequeues(client, o.queue, o.broker, "peek", o.acceptDeliveryCount, io.log);
      const shown = facts.type === "stream" ? await peekStream(client, o, io) : await peek(client, o, io);
      if (shown === 0) io.log.warn(`queue '${o.queue}' is empty`);
      return undefined;
    });
  } catch (err) {
    if (!readerGone(err)) throw err;
    throw new KmqError(
      ExitCode.readerGone,
      "the reader of stdout went away: nothing was taken (a peek puts every message back)",
    );
  }
}

/**
 * Takes up to `count` messages with basic.get, unacknowledged, writes them, then closes the
 * channel: the broker puts every one back where it was (marked redelivered). Nothing is acked,
 * whatever happens, so a peek can take nothing away.
 */
async function peek(client: AMQPClient, op: PeekOptions, io: OperateIo): Promise<number> {
  const ch = await client.channel();
  let shown = 0;
  try {
    for (; shown < op.count; shown++) {
      const msg: AMQPMessage | null = await attempt(
        `reading queue '${op.queue}'`,
        () => ch.basicGet(op.queue, { noAck: false }),
      );
      if (!msg) break;
      await show(msg, op, io);
    }
  } finally {
    await ch.close().catch(() => {}); // the unacked messages go back (a classic queue keeps their order)
  }
  return shown;
}

/** How long a stream read waits for one more message before taking the stream's end as reached. */
const STREAM_END_MS = 1_000;

/**
 * A stream keeps its messages whatever a consumer does: the first `count` are read from its first
 * offset (basic.get is not for streams) and the consumer cancelled.
 */
async function peekStream(client: AMQPClient, op: PeekOptions, io: OperateIo): Promise<number> {
  const ch = await client.channel();
  const taken: AMQPMessage[] = [];
  let wake = () => {};
  try {
    await ch.basicQos(Math.min(op.count, 1000));
    const consumer = await ch.basicConsume(
      op.queue,
      { noAck: false, args: { "x-stream-offset": "first" } },
      (m) => {
        if (taken.length < op.count) taken.push(m);
        m.ack().catch(() => {}); // a stream's acks only open the window: nothing is removed
        wake();
      },
    );
    let shown = 0;
    while (shown < op.count) {
      if (shown === taken.length) {
        const more = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), STREAM_END_MS);
          wake = () => (clearTimeout(timer), resolve(true));
        });
        if (!more && shown === taken.length) break;
        continue;
      }
      await show(taken[shown++]!, op, io);
    }
    await consumer.cancel().catch(() => {});
    return shown;
  } finally {
    await ch.close().catch(() => {});
  }
}

function show(msg: AMQPMessage, op: PeekOptions, io: OperateIo): Promise<void> {
  return write(
    io.stdout,
    printed(msg, op.format, op.template, io.stdout.isTTY === true),
  );
}

export function definePeek(program: Command, done: Done): void {
  templateOption(program.command("peek"))
    .description("show the first messages of a queue and put them back (order kept on classic queues)")
    .requiredOption("-q, --queue <name>", "the queue", shortString("--queue"))
    .option("-n, --count <n>", "at most n messages", integer("--count", 1, 65535), 10)
    .addOption(
      new Option("-o, --format <format>", "line, raw or json (as consume)").choices(FORMATS).default("line"),
    )
    .option(
      "--accept-delivery-count",
      "on a quorum queue with a delivery limit (RabbitMQ < 4.3): peek anyway, though each message put back counts a delivery",
    )
    .addHelpText("after", TEMPLATE_HELP)
    .action((o, cmd) => {
      const options: PeekOptions = {
        ...globalsOf(cmd),
        queue: o.queue,
        count: o.count,
        format: o.format as Format,
        template: templateFrom(o.template, cmd),
        acceptDeliveryCount: o.acceptDeliveryCount === true,
      };
      done({
        kind: "run",
        verbose: options.verbose,
        run: (io) => cmdPeek(options, { stdout: io.stdout(), log: io.log }),
      });
    });
}
