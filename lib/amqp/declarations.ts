import type { AMQPChannel, AMQPClient } from "@cloudamqp/amqp-client";
import { type ArgumentTable, checkQueueType } from "./arguments.ts";
import type { BrokerOptions } from "./connection.ts";
import { existing, inequivalent, matchQueue, type Mismatch, queueConflict } from "./mismatch.ts";
import { appliedPolicy } from "./queue-facts.ts";
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

/**
 * Publishing through the default exchange, declaring nothing: for a publisher whose messages name
 * their queue by routing key (bench, a consumer putting messages back at a queue's tail).
 */
export const DEFAULT_EXCHANGE_ONLY: Topology = {
  exchange: { name: "", type: "direct", durable: true, autoDelete: false, arguments: {}, adopt: true },
  bindingKeys: [],
  bindArguments: {},
  exchangeSources: [],
  declare: false,
};

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
  { confirm = false, broker }: { confirm?: boolean; broker?: BrokerOptions } = {},
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
        if (m.kind !== "queue" || !topology.queue) throw err;
        throw await everyDifference(client, topology.queue, m, broker);
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

/**
 * Exit 6 naming every way the existing queue differs from `q` (found by declaring it again with
 * each difference adopted), and a policy that sets one of them when the management API says so
 * (`broker` given).
 */
async function everyDifference(
  client: AMQPClient,
  q: QueueSpec,
  first: Mismatch,
  broker?: BrokerOptions,
): Promise<KmqError> {
  const wanted = {
    flags: { durable: q.durable, autoDelete: q.autoDelete, exclusive: q.exclusive },
    args: q.arguments,
  };
  const { mismatches } = await matchQueue(client, q.name, wanted).catch(() => ({ mismatches: [first] }));
  const policy = broker ? await appliedPolicy(broker, client.vhost, q.name) : undefined;
  return queueConflict(q.name, mismatches.length > 0 ? mismatches : [first], q.arguments, policy);
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
