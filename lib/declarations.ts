import type { AMQPChannel } from "@cloudamqp/amqp-client";
import { classifyError, ExitCode, KmqError, UsageError } from "./errors.ts";
import type { Log } from "./log.ts";

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
}

export interface QueueSpec {
  /** `""` asks the broker for a server-named queue (then always exclusive and auto-delete). */
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
}

/** One command's topology: an exchange, optionally a queue, and the keys binding them. */
export interface Topology {
  exchange: ExchangeSpec;
  queue?: QueueSpec;
  /** One binding of the queue to the exchange per key; none with the default exchange. */
  bindingKeys: string[];
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
  return {
    exchange: {
      name: o.exchange,
      type: o.exchangeType,
      durable: o.durable,
      autoDelete: o.autoDelete,
    },
    queue: o.queue === undefined ? undefined : {
      name: o.queue,
      durable: o.durable && !serverNamed,
      exclusive: o.exclusive || serverNamed,
      autoDelete: o.autoDelete || serverNamed,
    },
    bindingKeys: o.exchange === "" ? [] : o.bindingKeys,
    declare: o.declare,
  };
}

/**
 * Declares the exchange, the queue and its bindings (or, with `declare: false`, checks that they
 * exist) and returns the queue's name — the broker's name for a server-named queue.
 *
 * The methods go out back to back and their replies are awaited in order afterwards (the broker
 * answers a channel's methods in order, and a failure closes the channel, failing the rest): one
 * round trip instead of one per entity, while an error still names the entity that failed.
 */
export async function declareTopology(
  channel: AMQPChannel,
  topology: Topology,
  log: Log,
): Promise<string | undefined> {
  const { exchange, queue } = topology;
  const exchangeStep = exchange.name === "" ? undefined : declareExchange(channel, topology, log);
  if (!queue) {
    await exchangeStep;
    return undefined;
  }
  if (!topology.declare && queue.name !== "") {
    const check = step(
      `checking queue '${queue.name}'`,
      log,
      () => channel.queueDeclare(queue.name, { passive: true }),
    );
    await inOrder(exchangeStep, check);
    return queue.name;
  }
  const declared = step(
    `declaring queue '${queue.name || "(server-named)"}'`,
    log,
    () =>
      channel.queueDeclare(queue.name, {
        durable: queue.durable,
        exclusive: queue.exclusive,
        autoDelete: queue.autoDelete,
      }),
  );
  let name = queue.name;
  if (name === "") { // a server-named queue's bindings need its name first
    await inOrder(exchangeStep, declared);
    name = (await declared).name;
    log.info(`the broker named the queue '${name}'`);
  }
  const binds = topology.bindingKeys.map((key) =>
    step(
      `binding queue '${name}' to exchange '${exchange.name}' with key '${key}'`,
      log,
      () => channel.queueBind(name, exchange.name, key),
    )
  );
  await inOrder(exchangeStep, declared, ...binds);
  return name;
}

/** Awaits each step in turn, so the first failure is the one reported; the later ones are only its echo. */
async function inOrder(...steps: (Promise<unknown> | undefined)[]): Promise<void> {
  for (const s of steps) s?.catch(() => {});
  for (const s of steps) await s;
}

async function declareExchange(channel: AMQPChannel, topology: Topology, log: Log): Promise<void> {
  const { exchange } = topology;
  // RabbitMQ refuses to (re)declare its own amq.* exchanges; checking they exist is allowed.
  const reserved = exchange.name.startsWith("amq.");
  const passive = !topology.declare || reserved;
  try {
    await step(
      `${passive ? "checking" : "declaring"} exchange '${exchange.name}'`,
      log,
      () =>
        channel.exchangeDeclare(exchange.name, exchange.type, {
          passive,
          durable: exchange.durable,
          autoDelete: exchange.autoDelete,
        }),
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
