/**
 * What several commands share: the program-wide options as each command sees them, the parsers
 * of option values, the topology options (produce, consume, declare), and how a command hands
 * its work to main.ts (an {@link Invocation}). A command's own options live in its module.
 */
import type { Command, OptionValues } from "@commander-js/extra-typings";
import { InvalidArgumentError, Option } from "@commander-js/extra-typings";
import process from "node:process";
import type { Writable } from "node:stream";
import {
  type ArgumentTable,
  bindingArguments,
  OVERFLOWS,
  parseArgument,
  QUEUE_TYPES,
  type QueueArgumentOptions,
  queueArgumentsFrom,
} from "../amqp/arguments.ts";
import { DEFAULT_URL, type GlobalOptions } from "../amqp/connection.ts";
import type { Context } from "../config/contexts.ts";
import { DEFAULTS, EXCHANGE_TYPES, type TopologyOptions } from "../amqp/declarations.ts";
import { FieldError, fieldFromJson, type FieldTable, putKey } from "../messages/fields.ts";
import { InputError, UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import type { ProgressStream } from "../term/progress.ts";

export type { GlobalOptions };

/** What main.ts hands a command to run with: the process's streams and signals, opened on first use. */
export interface CommandIo {
  stdin: () => NodeJS.ReadableStream & AsyncIterable<Uint8Array> & { isTTY?: boolean };
  stdout: () => Writable;
  /** stderr for live progress lines (whether it is a terminal, its width). */
  stderr: () => Promise<ProgressStream & { write(text: string): unknown }>;
  log: Log;
  /** Aborted by SIGINT or SIGTERM (its reason the signal's name); the handlers go in on first call. */
  stop: () => AbortSignal;
  /** stderr is a terminal. */
  interactive: () => boolean;
  /** What to kill when a second signal makes kmq exit at once (running handlers). */
  onForcedExit: (kill: () => void) => void;
}

/**
 * What parsing the command line comes to: work to run, text to print (completion scripts), or
 * nothing left to do (help or the version was shown).
 */
export type Invocation =
  | { kind: "run"; verbose: boolean; run: (io: CommandIo) => Promise<void> }
  | { kind: "print"; text: string }
  | { kind: "done" };

export type Done = (invocation: Invocation) => void;
/** Adds a command (its options, help, examples and action) to the program. */
export type Define = (program: Command, done: Done, argv: string[]) => void;

/** What commander parsed for the program-wide options. */
interface ParsedGlobals {
  url?: string;
  verbose: boolean;
  cacert?: string;
  cert?: string;
  key?: string;
  passwordFile?: string;
}

/** The context this run uses (--context, KMQ_CONTEXT or the config file's default), set before parsing. */
let context: Context | undefined;

export function useContextSettings(c: Context | undefined): void {
  context = c;
}

/** The program-wide options: each from its flag or KMQ_* variable, else the context, else the default. */
export function globalsOf(cmd: { optsWithGlobals(): OptionValues }): GlobalOptions {
  const g = cmd.optsWithGlobals() as unknown as ParsedGlobals;
  // from the environment only: a password on the command line shows up in `ps`
  const password = process.env.KMQ_PASSWORD || undefined;
  return {
    broker: {
      url: g.url ?? context?.url ?? DEFAULT_URL,
      cacert: g.cacert ?? context?.cacert,
      cert: g.cert ?? context?.cert,
      key: g.key ?? context?.key,
      password,
      // KMQ_PASSWORD given wins over the context's file, as over the URL's password
      passwordFile: g.passwordFile ?? (password === undefined ? context?.passwordFile : undefined),
      apiUrl: process.env.KMQ_API_URL || context?.apiUrl,
    },
    verbose: g.verbose,
  };
}

export function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} must be a whole number`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be from ${min} to ${max}`);
    return n;
  };
}

export function seconds(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a number of seconds above 0`);
    }
    return n;
  };
}

export function positive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a number above 0`);
    }
    return n;
  };
}

export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function collectKeys(value: string, previous: string[] | undefined): string[] {
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
export function shortString(name: string) {
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
export function queueOnly(
  cmd: { getOptionValueSource(key: string): string | undefined; opts(): OptionValues },
): boolean {
  const given = (key: string) => ["cli", "env"].includes(cmd.getOptionValueSource(key) ?? "");
  // `-e '' -q NAME` says the same as `-q NAME` alone: the default exchange routes by the queue's name
  const defaultExchange = !given("exchange") || cmd.opts().exchange === "";
  return given("queue") && cmd.opts().queue !== "" && defaultExchange && !given("routingKey");
}

// deno-lint-ignore no-explicit-any
export function topologyOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
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
export function topologyArguments(
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

/**
 * --retry-timeout and --stop-timeout for the commands that publish with confirms while reading
 * (move, redrive): how long to reconnect, and how long confirms may take after a stop signal.
 */
// deno-lint-ignore no-explicit-any
export function retryAndStopOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  cmd: Command<A, O, G>,
  stopDescription: string,
) {
  return cmd
    .option(
      "--retry-timeout <seconds>",
      "keep reconnecting this long when a connection drops",
      seconds("--retry-timeout"),
      60,
    )
    .option("--stop-timeout <seconds>", stopDescription, seconds("--stop-timeout"), 5);
}
