import type { AMQPChannel, AMQPClient } from "@cloudamqp/amqp-client";
import { type ArgumentTable, checkQueueType, flagFor } from "./arguments.ts";
import { classifyError, ExitCode, KmqError, UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";

export const EXCHANGE_TYPES = ["direct", "fanout", "topic", "headers"] as const;
export type ExchangeType = (typeof EXCHANGE_TYPES)[number];

/** The tutorial's (and Kombu's) topology: what `kmq consume` and `kmq produce` use with no flags. */
export const DEFAULTS = {
  exchange: "test_exchange",
  exchangeType: "direct" as ExchangeType,
  queue: "queue",
  routingKey: "test",
} as const;

export interface ExchangeSpec {
  /** `""` is the default exchange, which exists always and is never declared. */
  name: string;
  type: ExchangeType;
  durable: boolean;
  autoDelete: boolean;
  /** `alternate-exchange` and the like. */
  arguments: ArgumentTable;
  /** No exchange options were given: one that exists with other arguments is used as it is. */
  adopt: boolean;
}

export interface QueueSpec {
  /** `""` asks the broker for a server-named queue (then always exclusive and auto-delete). */
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  /** `x-queue-type` and the other `x-` arguments. */
  arguments: ArgumentTable;
  /**
   * No queue options were given: where the queue exists with other arguments (a quorum queue, a
   * TTL), it is used as it is instead of failing on PRECONDITION_FAILED.
   */
  adopt: boolean;
}

/** One command's topology: an exchange, optionally a queue, and the keys binding them. */
export interface Topology {
  exchange: ExchangeSpec;
  queue?: QueueSpec;
  /** One binding of the queue to the exchange per key; none with the default exchange. */
  bindingKeys: string[];
  /** Each binding's arguments (x-match and the headers to match, for a headers exchange). */
  bindArguments: ArgumentTable;
  /** Source exchanges the exchange is bound to, with each binding key (exchange-to-exchange). */
  exchangeSources: string[];
  /** False with --no-declare: the entities must exist already. */
  declare: boolean;
}

/** The topology options every command shares (`-e`, `-t`, `-q`, `-r`, `--no-durable`, …). */
export interface TopologyOptions {
  exchange: string;
  exchangeType: ExchangeType;
  /** `undefined`: declare no queue. */
  queue: string | undefined;
  bindingKeys: string[];
  durable: boolean;
  autoDelete: boolean;
  exclusive: boolean;
  declare: boolean;
  queueArguments?: ArgumentTable;
  exchangeArguments?: ArgumentTable;
  bindArguments?: ArgumentTable;
  /** Any queue option given (type, argument, --no-durable, --auto-delete, --exclusive). */
  queueOptionsGiven?: boolean;
  /** Any exchange option given (argument, --no-durable, --auto-delete). */
  exchangeOptionsGiven?: boolean;
  /** Exchanges the exchange is bound to (kmq declare --bind-exchange), with each binding key. */
  exchangeSources?: string[];
}

/** Builds the shared topology from a command's options; Kombu's defaults fill the gaps. */
export function topologyFrom(o: TopologyOptions): Topology {
  const serverNamed = o.queue === "";
  if (serverNamed && o.exchange === "" && o.declare) {
    throw new UsageError(
      "-q '' with -e '' is a new queue bound to nothing: no message could reach it; " +
        "name an exchange to tap (-e EXCHANGE) or a queue to read (-q NAME)",
    );
  }
  if (o.declare && o.queue?.startsWith("amq.")) {
    throw new UsageError(
      `queue names starting with 'amq.' are reserved by the broker: choose another name for '${o.queue}', ` +
        "or pass --no-declare to use an existing one",
    );
  }
  const queueArguments = o.queueArguments ?? {};
  if (o.queue !== undefined) {
    checkQueueType(queueArguments, { ...o, serverNamed });
  }
  return {
    exchange: {
      name: o.exchange,
      type: o.exchangeType,
      durable: o.durable,
      autoDelete: o.autoDelete,
      arguments: o.exchangeArguments ?? {},
      adopt: !o.exchangeOptionsGiven,
    },
    queue: o.queue === undefined ? undefined : {
      name: o.queue,
      durable: o.durable && !serverNamed,
      exclusive: o.exclusive || serverNamed,
      autoDelete: o.autoDelete || serverNamed,
      arguments: queueArguments,
      adopt: !o.queueOptionsGiven && !serverNamed,
    },
    bindingKeys: o.exchange === "" ? [] : o.bindingKeys,
    bindArguments: o.bindArguments ?? {},
    exchangeSources: o.exchangeSources ?? [],
    declare: o.declare,
  };
}

/** What declaring left: the channel to go on with and the queue's name. */
export interface Declared {
  channel: AMQPChannel;
  /** The broker's name for a server-named queue; undefined without a queue. */
  queue?: string;
}

/**
 * Opens a channel and declares the exchange, the queue and its bindings (or, with `declare:
 * false`, checks that they exist); with `confirm`, also enables publisher confirms on it.
 *
 * The methods go out back to back and their replies are awaited in order afterwards (the broker
 * answers a channel's methods in order, and a failure closes the channel, failing the rest): one
 * round trip instead of one per entity, while an error still names the entity that failed.
 *
 * An exchange or queue that exists with other arguments (a quorum queue, a TTL, an alternate
 * exchange, …) is used as it is when the command line gave no options for it: the failed channel
 * is replaced and the entity checked passively. With such options, a queue's mismatch is exit 6
 * naming the flag that would match; an exchange of another type is never adopted.
 */
export async function declareTopology(
  client: AMQPClient,
  topology: Topology,
  log: Log,
  { confirm = false } = {},
): Promise<Declared> {
  const passive = { exchange: !topology.declare, queue: !topology.declare };
  for (;;) {
    const channel = await client.channel();
    try {
      return await declareOn(channel, topology, log, confirm, passive);
    } catch (err) {
      const m = inequivalent(err);
      if (!m) throw err;
      const spec = m.kind === "queue" ? topology.queue : topology.exchange;
      if (!spec?.adopt || passive[m.kind] || m.argument === "type") {
        throw m.kind === "queue" ? conflict(m, topology.queue?.arguments[m.argument]) : err;
      }
      log.info(
        `${m.kind} '${m.name}' exists ${existing(m)}: using it as it is (no ${m.kind} options given)`,
      );
      passive[m.kind] = true;
      await channel.close().catch(() => {});
    }
  }
}

async function declareOn(
  channel: AMQPChannel,
  topology: Topology,
  log: Log,
  confirm: boolean,
  passive: { exchange: boolean; queue: boolean },
): Promise<Declared> {
  const exchangeStep = topology.exchange.name === "" ? undefined : inOrder(
    declareExchange(channel, topology, log, passive.exchange),
    ...bindExchange(channel, topology, log),
  );
  const queue = topology.queue;
  if (!queue) {
    await inOrder(exchangeStep, confirmStep(channel, confirm));
    return { channel };
  }
  if (passive.queue && queue.name !== "") {
    const check = step(
      `checking queue '${queue.name}'`,
      log,
      () => channel.queueDeclare(queue.name, { passive: true }),
    );
    const binds = topology.declare ? bind(channel, topology, queue.name, log) : [];
    await inOrder(exchangeStep, check, ...binds, confirmStep(channel, confirm));
    return { channel, queue: queue.name };
  }
  const declared = step(
    `declaring queue '${queue.name || "(server-named)"}'`,
    log,
    () =>
      channel.queueDeclare(queue.name, {
        durable: queue.durable,
        exclusive: queue.exclusive,
        autoDelete: queue.autoDelete,
      }, queue.arguments),
  );
  let name = queue.name;
  if (name === "") { // a server-named queue's bindings need its name first
    await inOrder(exchangeStep, declared);
    name = (await declared).name;
    log.info(`the broker named the queue '${name}'`);
  }
  await inOrder(exchangeStep, declared, ...bind(channel, topology, name, log), confirmStep(channel, confirm));
  return { channel, queue: name };
}

/** The exchange bound to each source exchange, with each key (sent behind its declaration). */
function bindExchange(channel: AMQPChannel, topology: Topology, log: Log): Promise<unknown>[] {
  const { exchange, exchangeSources, bindingKeys, bindArguments } = topology;
  return exchangeSources.flatMap((source) =>
    bindingKeys.map((key) =>
      step(
        `binding exchange '${exchange.name}' to exchange '${source}' with key '${key}'`,
        log,
        () => channel.exchangeBind(exchange.name, source, key, bindArguments),
      )
    )
  );
}

function bind(channel: AMQPChannel, topology: Topology, queue: string, log: Log): Promise<unknown>[] {
  const { exchange, bindingKeys, bindArguments } = topology;
  return bindingKeys.map((key) =>
    step(
      `binding queue '${queue}' to exchange '${exchange.name}' with key '${key}'`,
      log,
      () => channel.queueBind(queue, exchange.name, key, bindArguments),
    )
  );
}

function confirmStep(channel: AMQPChannel, confirm: boolean): Promise<unknown> | undefined {
  if (!confirm) return undefined;
  return channel.confirmSelect().catch((err) => {
    throw classifyError(err, "enabling publisher confirms");
  });
}

export interface Mismatch {
  kind: "queue" | "exchange";
  name: string;
  argument: string;
  /** As the broker words them: "none", "'true'", "the value 'quorum' of type 'longstr'". */
  received: string;
  current: string;
}

/** RabbitMQ's "inequivalent arg 'x' for queue 'q' …: received A but current is B", taken apart. */
export function inequivalent(err: unknown): Mismatch | undefined {
  const text = err instanceof Error ? err.message : String(err);
  const m =
    /inequivalent arg '([^']+)' for (queue|exchange) '([^']*)' in vhost '[^']*': received (.+?) but current is (.+?)(?:; |$)/
      .exec(text);
  return m
    ? { argument: m[1]!, kind: m[2] as Mismatch["kind"], name: m[3]!, received: m[4]!, current: m[5]! }
    : undefined;
}

/** "with x-queue-type 'quorum'", "without x-message-ttl". */
function existing(m: Mismatch): string {
  const current = valueOf(m.current);
  return current === "none" ? `without ${m.argument}` : `with ${m.argument} '${current}'`;
}

/** 'quorum' from "the value 'quorum' of type 'longstr'", 'true' from "'true'", none from "none". */
export function valueOf(worded: string): string {
  return /'([^']*)'/.exec(worded)?.[1] ?? worded;
}

/** "a number" from "the value '10' of type 'signedint'"; undefined where the broker names no type. */
function typeOf(worded: string): string | undefined {
  const type = /of type '([a-z]+)'/.exec(worded)?.[1];
  if (type === undefined) return undefined;
  if (type === "longstr") return "a string";
  if (type === "bool") return "a boolean";
  return /int|long|short|byte/.test(type) ? "a number" : `of AMQP type ${type}`;
}

/**
 * Exit 6 naming the flag that would match. `asked` is the value the command line gave: where the
 * broker words both sides alike ('10' and '10'), they differ in type, and that decides the hint.
 */
function conflict(m: Mismatch, asked?: unknown): KmqError {
  const current = valueOf(m.current);
  const sameText = m.current !== "none" && m.received !== "none" && valueOf(m.received) === current;
  const askedType = typeof asked === "string"
    ? "a string"
    : asked === undefined
    ? undefined
    : "a typed value";
  const [has, wants] = [
    typeOf(m.current) ?? (sameText && askedType === "a string" ? "a number or boolean" : undefined),
    typeOf(m.received) ?? (sameText ? askedType : undefined),
  ];
  // the same text of different types ('10' the number, '10' the string) must say which is which
  const showTypes = sameText || (has !== undefined && wants !== undefined && has !== wants);
  const typed = (v: string, t?: string) => showTypes && t ? `'${v}' (${t})` : `'${v}'`;
  const askedText = m.received === "none" ? "none" : typed(valueOf(m.received), wants);
  const match = current === "none"
    ? `drop ${flagFor(m.argument, "").trim()}`
    : `declare it with ${
      flagFor(m.argument, current, has !== undefined ? has !== "a string" : typeof asked !== "string")
    }`;
  return new KmqError(
    ExitCode.brokerRefused,
    `declaring queue '${m.name}': it exists ${
      current === "none" ? existing(m) : `with ${m.argument} ${typed(current, has)}`
    } where the command line asks for ${askedText}: ` +
      `${match} to match, give no queue options to use it as it is, or delete it first`,
  );
}

/** Awaits each step in turn, so the first failure is the one reported; the later ones are only its echo. */
async function inOrder(...steps: (Promise<unknown> | undefined)[]): Promise<void> {
  for (const s of steps) s?.catch(() => {});
  for (const s of steps) await s;
}

async function declareExchange(
  channel: AMQPChannel,
  topology: Topology,
  log: Log,
  adopted: boolean,
): Promise<void> {
  const { exchange } = topology;
  // RabbitMQ refuses to (re)declare its own amq.* exchanges; checking they exist is allowed.
  const reserved = exchange.name.startsWith("amq.");
  const passive = adopted || reserved;
  try {
    await step(
      `${passive ? "checking" : "declaring"} exchange '${exchange.name}'`,
      log,
      () =>
        channel.exchangeDeclare(exchange.name, exchange.type, {
          passive,
          durable: exchange.durable,
          autoDelete: exchange.autoDelete,
        }, exchange.arguments),
    );
  } catch (err) {
    if (!reserved || !topology.declare || !/NOT_FOUND/.test((err as Error).message)) throw err;
    throw new KmqError(
      ExitCode.brokerRefused,
      `exchange '${exchange.name}' does not exist, and names starting with 'amq.' are the broker's own: ` +
        "kmq cannot declare it; choose another name (the broker's are amq.direct, amq.fanout, amq.topic, amq.headers)",
    );
  }
}

async function step<T>(what: string, log: Log, action: () => Promise<T>): Promise<T> {
  log.info(what);
  try {
    return await action();
  } catch (err) {
    throw classifyError(err, what);
  }
}
