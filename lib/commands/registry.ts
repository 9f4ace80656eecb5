/**
 * Every command, option and default of kmq, in one module: swapping commander for cliffy later
 * touches this file only. Parsing yields a typed {@link Invocation}; main.ts dispatches it.
 */
import {
  Argument,
  Command,
  CommanderError,
  type CommandUnknownOpts,
  Help,
  InvalidArgumentError,
  Option,
  type OptionValues,
} from "@commander-js/extra-typings";
import process from "node:process";
import { taskArgument } from "./celery.ts";
import { ExactObject, type ExactValue, JsonRangeError, parseExact } from "../messages/exact-json.ts";
import { type Compression, COMPRESSIONS } from "../messages/compression.ts";
import { type CommandTree, completionScript, SHELLS } from "./completion.ts";
import {
  type ArgumentTable,
  bindingArguments,
  OVERFLOWS,
  parseArgument,
  QUEUE_TYPES,
  type QueueArgumentOptions,
  queueArgumentsFrom,
  streamOffset,
} from "../amqp/arguments.ts";
import { VERSION } from "../term/version.ts";
import type { OperateOptions } from "./operate.ts";
import type { InfoOptions } from "./info.ts";
import type { MoveOptions } from "./move.ts";
import { type BrokerOptions, DEFAULT_URL } from "../amqp/connection.ts";
import { DEFAULTS, EXCHANGE_TYPES, type ExchangeType, type TopologyOptions } from "../amqp/declarations.ts";
import { InputError, UsageError } from "../term/errors.ts";
import { FieldError, fieldFromJson, type FieldTable, putKey } from "../messages/fields.ts";
import { type Format, FORMATS } from "../messages/formats.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../messages/sources.ts";

export interface GlobalOptions {
  broker: BrokerOptions;
  verbose: boolean;
}

/** What commander parsed for the program-wide options. */
interface ParsedGlobals {
  url?: string;
  verbose: boolean;
  cacert?: string;
  cert?: string;
  key?: string;
  passwordFile?: string;
}

function globalsOf(cmd: { optsWithGlobals(): OptionValues }): GlobalOptions {
  const g = cmd.optsWithGlobals() as unknown as ParsedGlobals;
  return {
    broker: {
      url: g.url ?? DEFAULT_URL,
      cacert: g.cacert,
      cert: g.cert,
      key: g.key,
      // from the environment only: a password on the command line shows up in `ps`
      password: process.env.KMQ_PASSWORD || undefined,
      passwordFile: g.passwordFile,
      apiUrl: process.env.KMQ_API_URL || undefined,
    },
    verbose: g.verbose,
  };
}

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

export interface CallOptions extends ProduceOptions {
  /** Seconds to wait for the reply. */
  timeout: number;
}

export interface ConsumeOptions extends GlobalOptions {
  topology: TopologyOptions;
  /** basic.consume's arguments: x-stream-offset, x-priority. */
  consumerArguments: Record<string, unknown>;
  count?: number;
  idleTimeout?: number;
  prefetch: number;
  ack: boolean;
  accept: string[];
  format: Format;
  /** Run this once per message instead of printing it (`-- cmd args`). */
  command: string[];
  concurrency: number;
  execTimeout?: number;
  /** Seconds to keep reconnecting after the connection drops; undefined: forever. */
  retryTimeout?: number;
  /** After a stop signal, seconds running commands get before their process groups are killed. */
  stopTimeout: number;
  /** Undo content_encoding gzip/deflate before output or the command. */
  decode: boolean;
  /** Publish the command's stdout to the request's reply_to (RPC server). */
  reply: boolean;
  replyContentType: string;
  /** A CEL condition: only matching messages are printed or handled. */
  filter?: string;
  /** Ack (drop) the messages --filter does not match, instead of holding them for the queue. */
  ackUnmatched: boolean;
  /** --filter may hold messages of a quorum queue whose delivery limit counts their return. */
  acceptDeliveryCount: boolean;
}

export interface CelerySendOptions extends GlobalOptions {
  task: string;
  /** JSON read exactly (numbers as written), or strings. */
  args: ExactValue[];
  kwargs: ExactObject;
  /** Seconds from now: the ETA. */
  countdown?: number;
  /** ISO 8601 ETA. */
  eta?: string;
  /** Seconds from now after which the worker discards the task. */
  expires?: number;
  id?: string;
  /** How the message goes out: produce's options, to the queue through the default exchange. */
  produce: ProduceOptions;
}

export interface DeclareOptions extends GlobalOptions {
  topology: TopologyOptions;
}

export type Invocation =
  | { command: "produce"; options: ProduceOptions }
  | { command: "consume"; options: ConsumeOptions }
  | { command: "declare"; options: DeclareOptions }
  | { command: "call"; options: CallOptions }
  | { command: "celery-send"; options: CelerySendOptions }
  | { command: "operate"; options: OperateOptions }
  | { command: "move"; options: MoveOptions }
  | { command: "info"; options: InfoOptions }
  /** Text for stdout and nothing else to do (kmq completion). */
  | { command: "print"; text: string }
  /** --help or --version was shown: nothing left to do. */
  | { command: "done" };

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} must be a whole number`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be from ${min} to ${max}`);
    return n;
  };
}

function seconds(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a number of seconds above 0`);
    }
    return n;
  };
}

function positive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a number above 0`);
    }
    return n;
  };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectKeys(value: string, previous: string[] | undefined): string[] {
  return collect(shortString("--routing-key")(value), previous);
}

/**
 * `key=value` sends a string; `key:=json` sends the JSON value (number, boolean, table, array),
 * the way httpie types its fields. Adds to `into` in place: copying it per header made 30,000
 * headers take 48 s.
 */
export function parseHeader(spec: string, into: FieldTable): FieldTable {
  const typed = /^([^=:]+):=(.*)$/s.exec(spec);
  if (typed) {
    const [, key = "", json = ""] = typed;
    shortString(`header name '${key.slice(0, 40)}'`)(key);
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      throw new InvalidArgumentError(`header '${key}': '${json}' is not valid JSON (key:=json)`);
    }
    try {
      putKey(into, key, fieldFromJson(value));
      return into;
    } catch (err) {
      // the value is well-formed but cannot be sent (NaN, out of range, too deep): bad input
      if (err instanceof FieldError) throw new InputError(`header '${key}': ${err.message}`);
      throw err;
    }
  }
  const eq = spec.indexOf("=");
  if (eq <= 0) {
    throw new InvalidArgumentError(`'${spec}' is not key=value (or key:=json for a typed value)`);
  }
  const key = spec.slice(0, eq);
  shortString(`header name '${key.slice(0, 40)}'`)(key);
  putKey(into, key, spec.slice(eq + 1));
  return into;
}

/** AMQP short strings (names, keys, most properties) hold at most 255 bytes. */
function shortString(name: string) {
  return (value: string): string => {
    const bytes = new TextEncoder().encode(value).length;
    if (bytes > 255) {
      // not commander's "argument '…' is invalid": that would echo all of the long value
      throw new UsageError(`${name} is ${bytes} bytes long: AMQP allows at most 255`);
    }
    return value;
  };
}

/**
 * `-q NAME` with neither `-e` nor `-r`: the queue is read (or declared) as it is and bound to
 * nothing, so reading somebody's queue never rewires it. A server-named queue (`-q ''`) has
 * nothing to read unless it is bound, so it keeps the tutorial's binding.
 */
function queueOnly(
  cmd: { getOptionValueSource(key: string): string | undefined; opts(): OptionValues },
): boolean {
  const given = (key: string) => ["cli", "env"].includes(cmd.getOptionValueSource(key) ?? "");
  return given("queue") && cmd.opts().queue !== "" && !given("exchange") && !given("routingKey");
}

// deno-lint-ignore no-explicit-any
function topologyOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  cmd: Command<A, O, G>,
) {
  return cmd
    .option(
      "-e, --exchange <name>",
      "exchange ('' = the default exchange, never declared)",
      shortString("--exchange"),
      DEFAULTS.exchange as string,
    )
    .addOption(
      new Option("-t, --exchange-type <type>", "exchange type").choices(EXCHANGE_TYPES).default(
        DEFAULTS.exchangeType,
      ),
    )
    .option("--no-durable", "declare a non-durable exchange and queue (Kombu's default is durable)")
    .option("--auto-delete", "declare an auto-delete exchange and queue", false)
    .option("--exclusive", "declare the queue exclusive to this connection", false)
    .option("--no-declare", "declare nothing: the exchange and queue must exist")
    .addOption(new Option("--queue-type <type>", "declare the queue of this type").choices(QUEUE_TYPES))
    .option(
      "--queue-arg <key=value>",
      "queue argument; key:=json for a typed value (repeatable), e.g. x-max-priority:=10",
      (spec: string, into?: ArgumentTable) => parseArgument("--queue-arg", spec, into),
    )
    .option(
      "--max-length <n>",
      "keep at most n messages (x-max-length)",
      integer("--max-length", 0, 2 ** 53 - 1),
    )
    .option(
      "--max-length-bytes <n>",
      "keep at most n bytes of bodies (x-max-length-bytes)",
      integer("--max-length-bytes", 0, 2 ** 53 - 1),
    )
    .option(
      "--message-ttl <ms>",
      "drop (or dead-letter) messages older than this (x-message-ttl)",
      integer("--message-ttl", 0, 2 ** 32 - 1),
    )
    .option(
      "--dead-letter-exchange <name>",
      "dead-letter to this exchange (x-dead-letter-exchange)",
      shortString("--dead-letter-exchange"),
    )
    .option(
      "--dead-letter-routing-key <key>",
      "with this routing key (x-dead-letter-routing-key)",
      shortString("--dead-letter-routing-key"),
    )
    .addOption(new Option("--overflow <behaviour>", "when full (x-overflow)").choices(OVERFLOWS))
    .option("--single-active-consumer", "one consumer at a time gets messages (x-single-active-consumer)")
    .option(
      "--delivery-limit <n>",
      "quorum: dead-letter a message after n redeliveries (x-delivery-limit)",
      integer("--delivery-limit", 0, 2 ** 31 - 1),
    )
    .option("--max-age <age>", "stream: keep messages this long, e.g. 7D, 12h (x-max-age)")
    .option(
      "--exchange-arg <key=value>",
      "exchange argument; key:=json for a typed value (repeatable)",
      (spec: string, into?: ArgumentTable) => parseArgument("--exchange-arg", spec, into),
    )
    .option(
      "--alternate-exchange <name>",
      "unroutable messages go to this exchange (alternate-exchange)",
      shortString("--alternate-exchange"),
    )
    .option(
      "--bind-arg <key=value>",
      "binding argument, for a headers exchange the header to match (repeatable)",
      (spec: string, into?: ArgumentTable) => parseArgument("--bind-arg", spec, into),
    )
    .addOption(
      new Option("--match <all|any>", "headers exchange: match all --bind-arg headers, or any (x-match)")
        .choices(["all", "any"]),
    );
}

/** The declaration arguments of topologyOptions, as the shared topology takes them. */
function topologyArguments(
  o: QueueArgumentOptions & {
    exchangeArg?: ArgumentTable;
    alternateExchange?: string;
    bindArg?: ArgumentTable;
    match?: string;
  },
  cmd: { getOptionValueSource(key: string): string | undefined },
): Pick<
  TopologyOptions,
  "queueArguments" | "exchangeArguments" | "bindArguments" | "queueOptionsGiven" | "exchangeOptionsGiven"
> {
  const queueArguments = queueArgumentsFrom(o);
  const exchangeArguments: ArgumentTable = { ...o.exchangeArg };
  if (o.alternateExchange !== undefined) exchangeArguments["alternate-exchange"] = o.alternateExchange;
  const given = (key: string) => ["cli", "env"].includes(cmd.getOptionValueSource(key) ?? "");
  return {
    queueArguments,
    exchangeArguments,
    bindArguments: bindingArguments(o.bindArg, o.match),
    queueOptionsGiven: Object.keys(queueArguments).length > 0 ||
      ["durable", "autoDelete", "exclusive"].some(given),
    exchangeOptionsGiven: Object.keys(exchangeArguments).length > 0 || ["durable", "autoDelete"].some(given),
  };
}

/** produce's options that mean nothing for one request and its reply: hidden from call's help, refused. */
const CALL_UNUSED = ["repeat", "replyTo", "confirm", "lines", "jsonl", "rate", "compress"];

/** Help without commander's "(default: false)" and "(default: {})": an off switch needs no default. */
const HELP = {
  optionDescription(option: Option): string {
    const text = new Help().optionDescription(option);
    return text.replace(/ \(default: (false|\{\})\)$/, "").replace(/, default: (false|\{\})\)$/, ")");
  },
};

const EXAMPLES = `
Examples:
  kmq consume                              # the tutorial's consumer.py: prints each message
  kmq produce "Hello World!"               # the tutorial's producer.py
  kmq produce --json '{"task": "add"}'     # Kombu's JSON serializer
  seq 1 1000 | kmq produce --lines         # one message per line, every one confirmed
  kmq consume -o json -n 10 > dump.jsonl   # dump ten messages with all their properties
  kmq consume -q '' -e amq.topic -r '#'    # tap an exchange with a throw-away queue
  kmq declare -e jobs -q jobs -r jobs      # create topology from a setup script
  kmq consume -c 4 -- ./handle.sh          # a command per message: exit 0 acks, 75 requeues
  kmq call -e "" -r rpc "question"         # RPC: send a request, print the reply

Environment: KMQ_URL (the broker URL), KMQ_PASSWORD (wins over the URL's password), KMQ_PASSWORD_FILE,
KMQ_CACERT, KMQ_CERT, KMQ_KEY (as the options of the same name), KMQ_API_URL (the management API, as --api-url). Exit codes: 0 ok, 1 unexpected, 2 usage, 3 bad input,
4 broker unreachable, 5 access refused, 6 broker refused an operation, 7 message not delivered,
8 messages a command failed on, 9 consumer cancelled by the broker, 130/143 stopped by SIGINT/SIGTERM,
141 the reader of stdout went away. Reference: docs/reference.md.`;

/** The version; with -v also the runtime that runs kmq and the platform it was built for. */
function versionText(argv: string[]): string {
  if (!argv.includes("-v") && !argv.includes("--verbose")) return VERSION;
  const versions = process.versions as Record<string, string | undefined>;
  const runtime = versions.bun
    ? `bun ${versions.bun}`
    : versions.deno
    ? `deno ${versions.deno}`
    : `node ${versions.node}`;
  return `kmq ${VERSION} (${runtime}, ${process.platform}-${process.arch})`;
}

/** Parses argv (without the runtime and script) into an invocation, or throws a UsageError. */
type Done = (invocation: Invocation) => void;
type Builder = (program: Command, done: Done, argv: string[]) => void;

/** produce and call share every message option. */
function messageCommand(program: Command, name: string, description: string) {
  return (
    topologyOptions(program.command(name).description(description))
      .argument("[message...]", "message bodies, one message each")
      .option(
        "-q, --queue <name>",
        "also declare this queue and bind it with the routing key " +
          "(default: 'queue' when neither -e nor -r is given, so the tutorial's message waits for its consumer)",
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

type MessageCommand = ReturnType<typeof messageCommand>;
type MessageOptions = ReturnType<MessageCommand["opts"]>;

function messageOptionsFrom(messages: string[], o: MessageOptions, cmd: MessageCommand): ProduceOptions {
  const g = globalsOf(cmd);
  const explicitTopology = cmd.getOptionValueSource("exchange") !== "default" ||
    cmd.getOptionValueSource("routingKey") !== "default";
  const queue = o.queue ?? (explicitTopology ? undefined : DEFAULTS.queue);
  return {
    broker: g.broker,
    verbose: g.verbose,
    topology: {
      exchange: o.exchange,
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
    routingKey: o.routingKey,
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
    given: new Set(
      cmd.options.map((opt) => opt.attributeName()).filter((name) => {
        const source = cmd.getOptionValueSource(name);
        return source === "cli" || source === "env";
      }),
    ),
  };
}

function buildProduce(program: Command, done: Done): void {
  const produce = messageCommand(
    program,
    "produce",
    "publish messages: each argument is one message; with none, stdin is the message",
  );
  produce
    .addHelpText(
      "after",
      `
Examples:
  kmq produce "Hello World!"
  kmq produce -e "" -r jobs -H attempt:=1 --json '{"id": 7}'
  kmq produce -f report.pdf -C application/pdf -E binary
  tail -f app.log | kmq produce -l -e logs -t fanout`,
    )
    .action((messages, o, cmd) => {
      done({ command: "produce", options: messageOptionsFrom(messages, o, cmd) });
    });
}

function buildCall(program: Command, done: Done): void {
  const call = messageCommand(
    program,
    "call",
    "send a request and print the reply (RPC over RabbitMQ's direct reply-to)",
  )
    .option("--timeout <seconds>", "wait this long for the reply (exit 4 after)", seconds("--timeout"), 30)
    .addHelpText(
      "after",
      `
Examples:
  kmq consume -e "" -q rpc --reply -- ./handler.sh    # the server, in another terminal
  kmq call -e "" -r rpc "question"`,
    )
    .action((messages, o, cmd) => {
      // shared with produce, but meaningless for one request and its reply
      const unused = CALL_UNUSED.find((key) => cmd.getOptionValueSource(key) === "cli");
      if (unused) {
        const flag = cmd.options.find((opt) => opt.attributeName() === unused)?.long ?? unused;
        throw new UsageError(
          `kmq call does not take ${flag}: it sends one request (an argument, stdin or --file) and waits for its reply`,
        );
      }
      const { timeout, ...rest } = o;
      done({
        command: "call",
        options: {
          ...messageOptionsFrom(messages, rest as MessageOptions, cmd as unknown as MessageCommand),
          timeout,
        },
      });
    });

  for (const opt of call.options) {
    if (CALL_UNUSED.includes(opt.attributeName())) opt.hideHelp();
  }
}

/** consume's arguments and options. */
function consumeCommand(program: Command) {
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
    )
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
    .option("--decode", "undo content_encoding gzip or deflate before output or the command", false)
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
  kmq consume -c 4 -- ./handle.sh          # exit 0 acks, 75 requeues, anything else rejects`,
    );
}

type ConsumeCommand = ReturnType<typeof consumeCommand>;
type ConsumeParsed = ReturnType<ConsumeCommand["opts"]>;

function buildConsume(program: Command, done: Done, argv: string[]): void {
  consumeCommand(program).action((command, o, cmd) => {
    checkConsumeArguments(command, o, cmd, argv);
    done({ command: "consume", options: consumeOptionsFrom(command, o, cmd) });
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

function buildDeclare(program: Command, done: Done): void {
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
      done({
        command: "declare",
        options: {
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
        },
      });
    });
}

function buildCelery(program: Command, done: Done): void {
  const celery = program.command("celery").description("Celery tasks from the shell");
  celery.command("send")
    .description("send a Celery task (protocol 2, as Celery 5 sends it) and print its id")
    .argument("<task>", "the task's name, e.g. tasks.add")
    .argument("[args...]", "positional arguments: JSON where they read as JSON (2, true, [1]), else strings")
    .option(
      "-q, --queue <name>",
      "the worker's queue (declared durable when missing)",
      shortString("--queue"),
      "celery",
    )
    .option("--kwargs <json>", "keyword arguments, a JSON object", "{}")
    .option("--countdown <seconds>", "run no sooner than this many seconds from now", seconds("--countdown"))
    .option("--eta <iso-time>", "run no sooner than this time (ISO 8601)")
    .option(
      "--expires <seconds>",
      "discard the task if not run within this many seconds",
      seconds("--expires"),
    )
    .option("--id <id>", "the task id (default: a new UUID)", shortString("--id"))
    .option("--no-declare", "declare nothing: the queue must exist")
    .option(
      "--retry-timeout <seconds>",
      "keep reconnecting this long when the connection drops",
      seconds("--retry-timeout"),
      60,
    )
    .addHelpText(
      "after",
      `
Examples:
  kmq celery send tasks.add 2 3
  kmq celery send tasks.greet Ada --kwargs '{"greeting": "Hi"}' -q default --countdown 10`,
    )
    .action((task, args, o, cmd) => {
      const g = globalsOf(cmd);
      let kwargs: ExactValue;
      try {
        kwargs = parseExact(o.kwargs);
      } catch (err) {
        if (err instanceof JsonRangeError) throw new InputError(`--kwargs: ${err.message}`);
        throw new UsageError(`--kwargs '${o.kwargs}' is not JSON: give an object, e.g. '{"x": 1}'`);
      }
      if (!(kwargs instanceof ExactObject)) {
        throw new UsageError("--kwargs must be a JSON object, e.g. '{\"x\": 1}'");
      }
      // deno-lint-ignore no-control-regex -- control characters are what is refused
      if (!/^[^\s\x00-\x1f\x7f-\x9f]+$/.test(task) || task.startsWith(".") || task.endsWith(".")) {
        throw new UsageError(
          `task name '${task}' is not one a worker can run: give its registered name, e.g. tasks.add ` +
            "(no spaces or control characters, not empty)",
        );
      }
      if (o.eta !== undefined && Number.isNaN(Date.parse(o.eta))) {
        throw new UsageError(`--eta '${o.eta}' is not an ISO 8601 time, e.g. 2026-12-01T09:00:00Z`);
      }
      const produce = parseCommandLine(["produce", "-e", "", "-r", o.queue, "-q", o.queue, "x"]);
      if (produce.command !== "produce") throw new Error("unreachable");
      done({
        command: "celery-send",
        options: {
          ...g,
          task,
          args: args.map((a, i) => taskArgument(a, i + 1)),
          kwargs,
          countdown: o.countdown,
          eta: o.eta,
          expires: o.expires,
          id: o.id,
          produce: {
            ...produce.options,
            broker: g.broker,
            verbose: g.verbose,
            retryTimeout: o.retryTimeout,
            topology: { ...produce.options.topology, declare: o.declare },
            quiet: true,
          },
        },
      });
    });
}

function buildInfo(program: Command, done: Done): void {
  program.command("info")
    .description("show the broker's exchanges, bindings and queues as a tree (management HTTP API)")
    .option(
      "--api-url <url>",
      "the management API (default: the broker URL's host on 15672, or 15671 for amqps)",
    )
    .addOption(
      new Option("-o, --format <format>", "tree or json").choices(["tree", "json"] as const).default("tree"),
    )
    .addHelpText(
      "after",
      `
Examples:
  kmq info
  kmq info -o json | jq '.queues[] | select(.messages_ready > 0) | .name'
  kmq info -u amqps://ops@rabbit.example.com/prod --api-url https://rabbit.example.com/`,
    )
    .action((o, cmd) => {
      done({
        command: "info",
        options: { ...globalsOf(cmd), apiUrl: o.apiUrl, format: o.format as "tree" | "json" },
      });
    });
}

function buildPurge(program: Command, done: Done): void {
  program.command("purge")
    .description("remove every ready message from a queue and say how many")
    .argument("<queue>", "the queue", shortString("the queue name"))
    .action((queue, _o, cmd) => {
      done({ command: "operate", options: { ...globalsOf(cmd), operation: { op: "purge", queue } } });
    });
}

function buildDelete(program: Command, done: Done): void {
  const remove = program.command("delete").description("delete a queue or an exchange");
  remove.command("queue")
    .description("delete a queue, and the messages in it")
    .argument("<name>", "the queue", shortString("the queue name"))
    .option("--if-empty", "only if it holds no messages", false)
    .option("--if-unused", "only if it has no consumers", false)
    .action((queue, o, cmd) => {
      const operation = { op: "delete-queue" as const, queue, ifEmpty: o.ifEmpty, ifUnused: o.ifUnused };
      done({ command: "operate", options: { ...globalsOf(cmd), operation } });
    });
  remove.command("exchange")
    .description("delete an exchange")
    .argument("<name>", "the exchange", shortString("the exchange name"))
    .option("--if-unused", "only if nothing is bound to it", false)
    .action((exchange, o, cmd) => {
      const operation = { op: "delete-exchange" as const, exchange, ifUnused: o.ifUnused };
      done({ command: "operate", options: { ...globalsOf(cmd), operation } });
    });
}

function buildUnbind(program: Command, done: Done): void {
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
      const operation = {
        op: "unbind" as const,
        exchange: o.exchange,
        queue: o.queue,
        keys: o.routingKey ?? [DEFAULTS.routingKey],
        args: bindingArguments(o.bindArg, o.match),
      };
      done({ command: "operate", options: { ...globalsOf(cmd), operation } });
    });
}

function buildPeek(program: Command, done: Done): void {
  program.command("peek")
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
    .action((o, cmd) => {
      const operation = {
        op: "peek" as const,
        queue: o.queue,
        count: o.count,
        format: o.format as Format,
        acceptDeliveryCount: o.acceptDeliveryCount === true,
      };
      done({ command: "operate", options: { ...globalsOf(cmd), operation } });
    });
}

function buildMove(program: Command, done: Done): void {
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
      if ((o.to === undefined) === (o.toExchange === undefined)) {
        throw new UsageError("give the target: --to QUEUE or --to-exchange EXCHANGE (one of them)");
      }
      if (o.routingKey !== undefined && o.to !== undefined) {
        throw new UsageError("-r goes with --to-exchange: --to QUEUE routes by the queue's name");
      }
      const g = globalsOf(cmd);
      done({
        command: "move",
        options: {
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
        },
      });
    });
}

function buildCompletion(program: Command, done: Done): void {
  program.command("completion")
    .description("print a completion script for bash, zsh or fish")
    .addArgument(new Argument("<shell>", "the shell").choices(SHELLS))
    .addHelpText(
      "after",
      `
Examples:
  source <(kmq completion bash)      # in ~/.bashrc
  source <(kmq completion zsh)       # in ~/.zshrc
  kmq completion fish > ~/.config/fish/completions/kmq.fish`,
    )
    .action((shell) => {
      done({ command: "print", text: completionScript(program as unknown as CommandTree, shell) });
    });
}

/** Every command: kmq's help option and wording, errors thrown rather than printed and exited. */
function configure(commands: readonly CommandUnknownOpts[]): void {
  for (const cmd of commands) {
    cmd.helpOption("-h, --help", "show help").exitOverride().configureOutput({ outputError: () => {} })
      .configureHelp(HELP);
    configure(cmd.commands);
  }
}

/** Each command's builder, in the order help lists them: adds the command, its options and action. */
const BUILDERS: [string, Builder][] = [
  ["produce", buildProduce],
  ["call", buildCall],
  ["consume", buildConsume],
  ["declare", buildDeclare],
  ["celery", buildCelery],
  ["info", buildInfo],
  ["purge", buildPurge],
  ["delete", buildDelete],
  ["unbind", buildUnbind],
  ["peek", buildPeek],
  ["move", buildMove],
  ["completion", buildCompletion],
];

/** Global options that take a value: the word after them is not the command. */
const VALUED_GLOBALS = new Set(["-u", "--url", "--cacert", "--cert", "--key", "--password-file"]);

/** The command word of argv, if any: the first word that is neither a global option nor its value. */
function commandWord(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return undefined;
    if (!a.startsWith("-")) return a;
    if (VALUED_GLOBALS.has(a)) i++;
  }
  return undefined;
}

/** The program and its global options, with no command yet. */
function baseProgram(argv: string[]) {
  return new Command()
    .name("kmq")
    .description(
      "Produce and consume AMQP 0-9-1 messages (RabbitMQ, LavinMQ, …), speaking Kombu's wire format.",
    )
    .version(versionText(argv), "-V, --version", "print kmq's version (with -v: runtime and build target)")
    .helpOption("-h, --help", "show help")
    .addOption(
      new Option(
        "-u, --url <url>",
        `broker URL (amqp:// or amqps://; default ${DEFAULT_URL.replace(/:[^:@/]*@/, ":***@")}); ` +
          "several (repeat -u, or a comma-separated list) are tried in turn and failed over",
      ).env("KMQ_URL").argParser((value: string, previous: string | undefined) =>
        previous === undefined ? value : `${previous},${value}`
      ),
    )
    .addOption(new Option("--cacert <file>", "trust the CA(s) in this PEM file (amqps://)").env("KMQ_CACERT"))
    .addOption(new Option("--cert <file>", "client certificate, PEM (amqps://; with --key)").env("KMQ_CERT"))
    .addOption(new Option("--key <file>", "private key of --cert, PEM").env("KMQ_KEY"))
    .addOption(
      new Option("--password-file <file>", "read the password from this file (first line)").env(
        "KMQ_PASSWORD_FILE",
      ),
    )
    .option("-v, --verbose", "log connection and declaration steps to stderr", false)
    .addHelpText("after", EXAMPLES)
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .configureHelp(HELP);
}

/** Parses argv (without the runtime and script) into an invocation, or throws a UsageError. */
export function parseCommandLine(argv: string[]): Invocation {
  let invocation: Invocation = { command: "done" };
  const program = baseProgram(argv);

  const done: Done = (i) => (invocation = i);
  // only the invoked command is built (commander's option objects cost start-up time); help
  // without a command, a mistyped command and completion scripts need them all
  const word = commandWord(argv);
  const only = BUILDERS.some(([name]) => name === word) && word !== "completion" ? word : undefined;
  for (const [name, build] of BUILDERS) {
    if (only === undefined || name === only) build(program, done, argv);
  }
  configure(program.commands);

  try {
    program.parse(argv, { from: "user" });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") {
      return { command: "done" };
    }
    if (err.code === "commander.help") {
      // commander has printed the help to stderr: kmq was run without a command
      throw new UsageError(
        `no command given: use ${BUILDERS.map(([name]) => name).join(", ")}; run 'kmq --help' for usage`,
      );
    }
    const where = word !== undefined && BUILDERS.some(([name]) => name === word) ? `kmq ${word}` : "kmq";
    const message = err.message.replace(/^error: /, "").replace(/\n+/g, " ").trim().replace(/\.$/, "");
    throw new UsageError(`${message}; run '${where} --help' for usage`);
  }
  return invocation;
}
