import process from "node:process";
import { type Command, InvalidArgumentError, Option, type OptionValues } from "@commander-js/extra-typings";
import { type QueueArgumentOptions, streamOffset } from "../amqp/arguments.ts";
import { DEFAULTS, type ExchangeType } from "../amqp/declarations.ts";
import type { ConsumeIo, ConsumeOptions } from "../consume/consume-loop.ts";
import { consumeRun } from "../consume/consume-run.ts";
import { type Format, FORMATS } from "../messages/formats.ts";
import { UsageError } from "../term/errors.ts";
import {
  collect,
  collectKeys,
  type Done,
  globalsOf,
  integer,
  queueOnly,
  seconds,
  shortString,
  topologyArguments,
  topologyOptions,
} from "./options.ts";
import { TEMPLATE_HELP, templateFrom, templateOption } from "./template-option.ts";
import { windowFrom, windowOptions } from "./window-options.ts";

export type { ConsumeIo } from "../consume/consume-loop.ts";

/**
 * `kmq consume`: prints messages (or runs a command per message) until --count, --idle-timeout,
 * a signal, or the reader going away; reconnects when the connection drops (consume/consume-run.ts).
 */
export function cmdConsume(o: ConsumeOptions, io: ConsumeIo): Promise<void> {
  return consumeRun(o, io);
}

/** consume's arguments and options. */
function consumeCommand(program: Command) {
  return windowOptions(templateOption(handlingOptions(readingOptions(program))));
}

/** Where consume reads from and how it writes: its topology, count, acks, offset and format. */
function readingOptions(program: Command) {
  return topologyOptions(
    program.command("consume").description(
      "print messages as they arrive, acking each once written",
    ),
  )
    .argument(
      "[command...]",
      "after --: run this command once per message (body on stdin, metadata in KMQ_*)",
    )
    .option(
      "-q, --queue <name>",
      "queue ('' = a server-named queue, to tap an exchange)",
      shortString("--queue"),
      DEFAULTS.queue as string,
    )
    .option("-r, --routing-key <key>", "bind with this key (repeatable; default: test)", collectKeys)
    .option("-n, --count <n>", "exit after n messages", integer("--count", 1, Number.MAX_SAFE_INTEGER))
    .option("--idle-timeout <seconds>", "exit once no message came for this long", seconds("--idle-timeout"))
    .option("-p, --prefetch <n>", "unacknowledged messages in flight", integer("--prefetch", 1, 65535), 100)
    .option("--no-ack", "let the broker ack on delivery (at-most-once)")
    .option(
      "--offset <where>",
      "stream: start at first, last, next, an offset n, an ISO 8601 time or an interval back (e.g. 1h)",
      streamOffset,
    )
    .option(
      "--consumer-priority <n>",
      "higher-priority consumers get messages first (x-priority)",
      integer("--consumer-priority", -(2 ** 31), 2 ** 31 - 1),
    )
    .option("--accept <content-type>", "accept only this content type, reject others (repeatable)", collect)
    .addOption(
      new Option(
        "-o, --format <format>",
        "output: line (body + newline), raw (body bytes), json (record per line)",
      )
        .choices(FORMATS).default("line" as const),
    );
}

/** What runs per message, --filter, --decode and reconnecting: consume's options after the reading ones. */
// deno-lint-ignore no-explicit-any
function handlingOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  cmd: Command<A, O, G>,
) {
  return cmd
    .option(
      "-c, --concurrency <n>",
      "with a command: run up to n at once",
      integer("--concurrency", 1, 1000),
      1,
    )
    .option(
      "--exec-timeout <seconds>",
      "with a command: kill it after this long (the message is requeued)",
      seconds("--exec-timeout"),
    )
    .option(
      "--stop-timeout <seconds>",
      "with a command: after Ctrl-C or SIGTERM, let running commands finish this long, then kill them (requeued)",
      seconds("--stop-timeout"),
      30,
    )
    .option(
      "--filter <expr>",
      'only messages this CEL condition is true for, e.g. \'headers["tenant"] == "acme"\' (others stay in a named queue)',
    )
    .option(
      "--ack-unmatched",
      "with --filter on a named queue: ack (remove) the messages that do not match",
      false,
    )
    .option(
      "--accept-delivery-count",
      "with --filter on a quorum queue with a delivery limit (RabbitMQ < 4.3): hold unmatched messages anyway",
      false,
    )
    .option(
      "--decode",
      "undo Kombu's compression header (zlib, bzip2, lzma, brotli) and content_encoding gzip or deflate " +
        "before output or the command",
      false,
    )
    .option("--reply", "with a command: publish its stdout to the message's reply_to (RPC)", false)
    .option("--reply-content-type <type>", "content type of replies", "text/plain")
    .option(
      "--retry-timeout <seconds>",
      "when the connection drops, give up reconnecting after this long (default: never)",
      seconds("--retry-timeout"),
    )
    .addHelpText(
      "after",
      `
Examples:
  kmq consume
  kmq consume -n 1 --idle-timeout 5 -o json
  kmq consume -q '' -e logs -t fanout
  kmq consume --accept application/json -o raw > bodies.bin
  kmq consume -q '' -e events -t topic -r '#' --filter 'headers["tenant"] == "acme"'
  kmq consume -c 4 -- ./handle.sh          # exit 0 acks, 75 requeues, anything else rejects
  kmq consume -q orders --exit-at-end --template '%k %h{tenant} %b\\n'   # what is there, one line each
  kmq consume -q events --last 100 --exit-at-end -o json                  # a stream's last 100
${TEMPLATE_HELP}`,
    );
}

type ConsumeCommand = ReturnType<typeof consumeCommand>;
type ConsumeParsed = ReturnType<ConsumeCommand["opts"]>;

/** `kmq consume`: its options, checks, help and examples. */
export function defineConsume(program: Command, done: Done, argv: string[]): void {
  consumeCommand(program).action((command, o, cmd) => {
    checkConsumeArguments(command, o, cmd, argv);
    const options = consumeOptionsFrom(command, o, cmd);
    done({
      kind: "run",
      verbose: options.verbose,
      run: async (io) => {
        const handlers = await import("../consume/handler.ts");
        io.onForcedExit(handlers.killRunningHandlers);
        await cmdConsume(options, {
          stdout: io.stdout(),
          stderr: process.stderr,
          log: io.log,
          stop: io.stop(),
          interactive: io.interactive(),
        });
      },
    });
  });
}

/** Words and options that would be silently ignored, or would do what nobody means: exit 2. */
function checkConsumeArguments(
  command: string[],
  o: ConsumeParsed,
  cmd: ConsumeCommand,
  argv: string[],
): void {
  if (command.length > 0 && !argv.includes("--")) {
    // `kmq consume date` would run date for every message and ack them all
    const [word = ""] = command;
    throw new UsageError(
      `unexpected argument '${word}': to read queue '${word}' use -q ${word}; ` +
        `to run it for each message put -- before it (kmq consume -- ${command.join(" ")})`,
    );
  }
  if (!o.ack && (o.queueType === "stream" || o.offset !== undefined)) {
    throw new InvalidArgumentError(
      "a stream needs acknowledgements (RabbitMQ uses them for flow control): drop --no-ack",
    );
  }
  if (o.template !== undefined && command.length > 0) {
    throw new InvalidArgumentError(
      "--template prints messages: with a command each message goes to the command",
    );
  }
  if (o.ackUnmatched && o.filter === undefined) {
    throw new InvalidArgumentError("--ack-unmatched needs --filter: without one every message matches");
  }
  if (command.length === 0) {
    // these only mean something for a command: without one they would be silently ignored
    const needsCommand = [
      ["reply", "--reply"],
      ["concurrency", "--concurrency"],
      ["execTimeout", "--exec-timeout"],
    ].find(([key]) => cmd.getOptionValueSource(key!) === "cli");
    if (needsCommand) {
      throw new InvalidArgumentError(
        `${needsCommand[1]} needs a command to run: kmq consume ${needsCommand[1]} … -- <command> [args...]`,
      );
    }
  }
}

function consumeOptionsFrom(command: string[], o: ConsumeParsed, cmd: ConsumeCommand): ConsumeOptions {
  const g = globalsOf(cmd);
  return {
    broker: g.broker,
    verbose: g.verbose,
    topology: {
      exchange: queueOnly(cmd) ? "" : o.exchange,
      exchangeType: o.exchangeType as ExchangeType,
      queue: o.queue,
      bindingKeys: o.routingKey ?? [DEFAULTS.routingKey],
      durable: o.durable,
      autoDelete: o.autoDelete,
      exclusive: o.exclusive,
      declare: o.declare,
      ...topologyArguments(o as QueueArgumentOptions, cmd),
    },
    consumerArguments: {
      ...(o.offset === undefined ? {} : { "x-stream-offset": o.offset }),
      ...(o.consumerPriority === undefined ? {} : { "x-priority": o.consumerPriority }),
    },
    count: o.count,
    idleTimeout: o.idleTimeout,
    prefetch: o.prefetch,
    ack: o.ack,
    accept: o.accept ?? [],
    format: o.format as Format,
    template: command.length > 0 ? undefined : templateFrom(o.template, cmd),
    window: windowFrom(o),
    command,
    concurrency: o.concurrency,
    execTimeout: o.execTimeout,
    stopTimeout: o.stopTimeout,
    retryTimeout: o.retryTimeout,
    decode: o.decode,
    reply: o.reply,
    replyContentType: o.replyContentType,
    filter: o.filter,
    ackUnmatched: o.ackUnmatched,
    acceptDeliveryCount: o.acceptDeliveryCount,
  };
}
