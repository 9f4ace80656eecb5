/**
 * The options of a message (produce, call, and the message celery send publishes): where it goes,
 * its properties and headers, and how it is published.
 */
import type { Command, OptionValues } from "@commander-js/extra-typings";
import { Option } from "@commander-js/extra-typings";
import type { QueueArgumentOptions } from "../amqp/arguments.ts";
import { DEFAULTS, type ExchangeType, type TopologyOptions } from "../amqp/declarations.ts";
import { type Compression, COMPRESSIONS } from "../messages/compression.ts";
import type { FieldTable } from "../messages/fields.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../messages/sources.ts";
import {
  collect,
  type GlobalOptions,
  globalsOf,
  integer,
  parseHeader,
  positive,
  queueOnly,
  seconds,
  shortString,
  topologyArguments,
  topologyOptions,
} from "./options.ts";

export interface ProduceOptions extends GlobalOptions {
  topology: TopologyOptions;
  messages: string[];
  lines: boolean;
  jsonl: boolean;
  files: string[];
  routingKey: string;
  json: boolean;
  contentType: string;
  contentEncoding: string;
  persistent: boolean;
  priority?: number;
  expiration?: string;
  messageId?: string;
  correlationId?: string;
  replyTo?: string;
  type?: string;
  appId?: string;
  userId?: string;
  /** Seconds since the epoch. */
  timestamp?: number;
  headers: FieldTable;
  /** Kombu's compression of each body. */
  compress?: Compression;
  confirm: boolean;
  mandatory: boolean;
  /** Messages per second at most. */
  rate?: number;
  /** Publish the message(s) this many times. */
  repeat: number;
  /** Seconds to keep reconnecting after the connection drops. */
  retryTimeout: number;
  /** After a stop signal, seconds to wait for outstanding confirms. */
  stopTimeout: number;
  /** Bytes one message may have at most (RabbitMQ's default max_message_size). */
  maxMessageSize: number;
  quiet: boolean;
  /** Options given on the command line (or env): with --jsonl they win over a record's fields. */
  given: Set<string>;
}

/** produce and call share every message option. */
export function messageCommand(program: Command, name: string, description: string) {
  return propertyAndSendingOptions(bodyOptions(program, name, description));
}

/** Where the messages go and where their bodies come from, and the content type and encoding. */
function bodyOptions(program: Command, name: string, description: string) {
  return (
    topologyOptions(program.command(name).description(description))
      .argument("[message...]", "message bodies, one message each")
      .option(
        "-q, --queue <name>",
        "also declare this queue and bind it with the routing key; alone (no -r, no -e or -e ''), send into it " +
          "through the default exchange, binding nothing (default: 'queue' when neither -e nor -r is " +
          "given, so the tutorial's message waits for its consumer)",
        shortString("--queue"),
      )
      .option(
        "-r, --routing-key <key>",
        "routing key",
        shortString("--routing-key"),
        DEFAULTS.routingKey as string,
      )
      .option("-l, --lines", "each line of stdin is one message", false)
      .option(
        "--jsonl",
        "each stdin line is a record as 'kmq consume -o json' writes it (replay a dump)",
        false,
      )
      .option("-f, --file <path>", "send the file as one message (repeatable)", collect)
      .option("--json", "check each message is JSON and send it as application/json (Kombu's default)", false)
      .option(
        "-C, --content-type <type>",
        "content type (default: text/plain, or application/json with --json)",
        shortString("--content-type"),
      )
      .option(
        "-E, --content-encoding <encoding>",
        "content encoding",
        shortString("--content-encoding"),
        "utf-8",
      )
  );
}

/** The message's properties and headers, and how it is sent: confirms, rate, repeats, timeouts. */
// deno-lint-ignore no-explicit-any
function propertyAndSendingOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  cmd: Command<A, O, G>,
) {
  return (
    cmd
      .option("--transient", "delivery mode 1 (default: 2, persistent)", false)
      .option("--priority <0-255>", "message priority", integer("--priority", 0, 255))
      .option(
        "--expiration <ms>",
        "per-message TTL in milliseconds",
        (v) => String(integer("--expiration", 0, 2 ** 32 - 1)(v)),
      )
      .option("--message-id <id>", "message id", shortString("--message-id"))
      .option("--correlation-id <id>", "correlation id", shortString("--correlation-id"))
      .option("--reply-to <queue>", "reply-to queue", shortString("--reply-to"))
      .option("--type <type>", "message type", shortString("--type"))
      .option("--app-id <id>", "application id", shortString("--app-id"))
      .option("--user-id <id>", "user id (RabbitMQ requires the connected user's)", shortString("--user-id"))
      .option(
        "--timestamp [seconds]",
        "timestamp property: now, or these seconds since the epoch",
        integer("--timestamp", 0, Number.MAX_SAFE_INTEGER),
      )
      .option("-H, --header <key=value>", "header; key:=json for a typed value (repeatable)", parseHeader, {})
      .addOption(
        new Option("--compress <method>", "compress each body as Kombu does (header 'compression')").choices(
          Object.keys(COMPRESSIONS) as Compression[],
        ),
      )
      .option("--no-mandatory", "let the broker drop messages no queue receives (default: an error)")
      .option("--no-confirm", "do not wait for publisher confirms (faster, no delivery guarantee)")
      .option("--rate <msgs/s>", "publish at most this many messages per second", positive("--rate"))
      .option(
        "--repeat <n>",
        "publish the message(s) n times",
        integer("--repeat", 1, Number.MAX_SAFE_INTEGER),
        1,
      )
      .option(
        "--retry-timeout <seconds>",
        "keep reconnecting this long when the connection drops",
        seconds("--retry-timeout"),
        60,
      )
      .option(
        "--stop-timeout <seconds>",
        "after Ctrl-C or SIGTERM, wait this long for outstanding confirms (then exit 7)",
        seconds("--stop-timeout"),
        5,
      )
      .option(
        "--max-message-size <bytes>",
        "refuse a message larger than this before reading all of it (RabbitMQ's default limit)",
        integer("--max-message-size", 1, 2 ** 32 - 1),
        DEFAULT_MAX_MESSAGE_SIZE,
      )
      .option("--quiet", "print nothing but errors", false)
  );
}

export type MessageCommand = ReturnType<typeof messageCommand>;
export type MessageOptions = ReturnType<MessageCommand["opts"]>;

export function messageOptionsFrom(
  messages: string[],
  o: MessageOptions,
  cmd: MessageCommand,
): ProduceOptions {
  const g = globalsOf(cmd);
  const explicitTopology = cmd.getOptionValueSource("exchange") !== "default" ||
    cmd.getOptionValueSource("routingKey") !== "default";
  const queue = o.queue ?? (explicitTopology ? undefined : DEFAULTS.queue);
  // -q NAME alone: the messages go into NAME through the default exchange, and nothing is bound,
  // so the tutorial's exchange never starts copying into it (as -q alone binds nothing for consume)
  const into = queueOnly(cmd) ? o.queue : undefined;
  const given = new Set(
    cmd.options.map((opt) => opt.attributeName()).filter((name) => {
      const source = cmd.getOptionValueSource(name);
      return source === "cli" || source === "env";
    }),
  );
  // a --jsonl record's own exchange and key give way too: -q alone means "into NAME"
  if (into !== undefined) { for (const name of ["exchange", "routingKey"]) given.add(name); }
  return {
    broker: g.broker,
    verbose: g.verbose,
    topology: {
      exchange: into !== undefined ? "" : o.exchange,
      exchangeType: o.exchangeType as ExchangeType,
      queue: queue === "" ? undefined : queue,
      bindingKeys: [o.routingKey],
      durable: o.durable,
      autoDelete: o.autoDelete,
      exclusive: o.exclusive,
      declare: o.declare,
      ...topologyArguments(o as QueueArgumentOptions, cmd),
    },
    messages,
    lines: o.lines,
    jsonl: o.jsonl,
    files: o.file ?? [],
    routingKey: into ?? o.routingKey,
    json: o.json,
    contentType: o.contentType ?? (o.json ? "application/json" : "text/plain"),
    contentEncoding: o.contentEncoding,
    persistent: !o.transient,
    priority: o.priority,
    expiration: o.expiration,
    messageId: o.messageId,
    correlationId: o.correlationId,
    replyTo: o.replyTo,
    type: o.type,
    appId: o.appId,
    userId: o.userId,
    timestamp: o.timestamp === true ? Math.floor(Date.now() / 1000) : o.timestamp,
    headers: o.header,
    compress: o.compress as Compression | undefined,
    confirm: o.confirm,
    mandatory: o.mandatory,
    rate: o.rate,
    repeat: o.repeat,
    retryTimeout: o.retryTimeout,
    stopTimeout: o.stopTimeout,
    maxMessageSize: o.maxMessageSize,
    quiet: o.quiet,
    given,
  };
}
