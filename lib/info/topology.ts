/**
 * A vhost's exchanges, bindings and queues as `kmq info` shows them, read from the management
 * API. A 200,000-queue broker is kept as columns (one array per field), not as 400,000 objects:
 * the runtime's heap grows to a multiple of what is live, so what is live is kept small. Each
 * answer is read element by element as it arrives; the default exchange's bindings (one per
 * queue, implicit) are dropped as they are read.
 */
import { NotAnArray } from "../amqp/json-array-reader.ts";
import { getJsonArray, type ManagementApi, managementApi } from "../amqp/management.ts";
import type { BrokerOptions } from "../amqp/connection.ts";
import { ExitCode, KmqError } from "../term/errors.ts";

/** An exchange as the API lists it. */
export interface Exchange {
  name: string;
  type: string;
  durable: boolean;
  auto_delete: boolean;
  internal: boolean;
  arguments: Record<string, unknown>;
}

/** A queue as `-o json` shows it, fields in that order. */
export interface Queue {
  name: string;
  type: string;
  durable: boolean;
  auto_delete: boolean;
  exclusive: boolean;
  arguments: Record<string, unknown>;
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
}

/** A binding as `-o json` shows it, fields in that order. */
export interface Binding {
  routing_key: string;
  arguments: Record<string, unknown>;
  destination_type: string;
  destination: string;
}

const DURABLE = 1, AUTO_DELETE = 2, EXCLUSIVE = 4;

/**
 * Equal small values (types, argument tables) kept once: 200,000 queues with the same
 * arguments hold one table. Tables are told apart by their JSON text, so only equal ones meet.
 */
class Interner {
  readonly #seen = new Map<string, unknown>();

  text(s: string): string {
    const known = this.#seen.get(s);
    if (known !== undefined) return known as string;
    this.#seen.set(s, s);
    return s;
  }

  table(t: unknown): Record<string, unknown> {
    if (t === null || typeof t !== "object" || isEmpty(t)) return EMPTY;
    const json = JSON.stringify(t);
    const key = `\0${json}`;
    const known = this.#seen.get(key);
    if (known !== undefined) return known as Record<string, unknown>;
    this.#seen.set(key, t);
    return t as Record<string, unknown>;
  }
}
function isEmpty(t: object): boolean {
  for (const _ in t) return false;
  return true;
}
const EMPTY: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/** Every queue, one array per field, in the API's order; `order` lists them by name. */
export class QueueTable {
  readonly names: string[] = [];
  readonly types: string[] = [];
  readonly flags: number[] = [];
  readonly ready: number[] = [];
  readonly unacked: number[] = [];
  readonly consumers: number[] = [];
  readonly args: Record<string, unknown>[] = [];
  /** Indices by name (so a binding's destination is looked up, not searched). */
  readonly byName = new Map<string, number>();
  order: number[] = [];

  add(q: Record<string, unknown>, interner: Interner): void {
    const args = interner.table(q.arguments);
    const name = String(q.name);
    this.byName.set(name, this.names.length);
    this.names.push(name);
    this.types.push(interner.text(String(q.type ?? args["x-queue-type"] ?? "classic")));
    this.flags.push(
      (q.durable === true ? DURABLE : 0) | (q.auto_delete === true ? AUTO_DELETE : 0) |
        (q.exclusive === true ? EXCLUSIVE : 0),
    );
    this.ready.push(Number(q.messages_ready ?? 0));
    this.unacked.push(Number(q.messages_unacknowledged ?? 0));
    this.consumers.push(Number(q.consumers ?? 0));
    this.args.push(args);
  }

  sort(): void {
    const names = this.names;
    this.order = names.map((_, i) => i).sort((a, b) => compare(names[a]!, names[b]!));
  }

  get length(): number {
    return this.names.length;
  }

  /** Queue `i` as an object, made when it is shown. */
  at(i: number): Queue {
    const flags = this.flags[i]!;
    return {
      name: this.names[i]!,
      type: this.types[i]!,
      durable: (flags & DURABLE) !== 0,
      auto_delete: (flags & AUTO_DELETE) !== 0,
      exclusive: (flags & EXCLUSIVE) !== 0,
      arguments: this.args[i]!,
      messages_ready: this.ready[i]!,
      messages_unacknowledged: this.unacked[i]!,
      consumers: this.consumers[i]!,
    };
  }
}

/** One exchange's bindings, one array per field; `order` lists them by type, destination and key. */
export class BindingList {
  readonly types: string[] = [];
  readonly destinations: string[] = [];
  readonly keys: string[] = [];
  readonly args: Record<string, unknown>[] = [];
  order: number[] = [];

  add(b: Record<string, unknown>, interner: Interner, queues: QueueTable): void {
    const type = interner.text(String(b.destination_type));
    const destination = String(b.destination);
    const queue = type === "queue" ? queues.byName.get(destination) : undefined;
    // a queue's name is held once, by the queue table
    this.destinations.push(queue === undefined ? destination : queues.names[queue]!);
    this.types.push(type);
    this.keys.push(String(b.routing_key ?? ""));
    this.args.push(interner.table(b.arguments));
  }

  sort(): void {
    const { types, destinations, keys } = this;
    this.order = types.map((_, i) => i).sort((a, b) =>
      compare(types[a]!, types[b]!) || compare(destinations[a]!, destinations[b]!) ||
      compare(keys[a]!, keys[b]!)
    );
  }

  get length(): number {
    return this.types.length;
  }

  at(i: number): Binding {
    return {
      routing_key: this.keys[i]!,
      arguments: this.args[i]!,
      destination_type: this.types[i]!,
      destination: this.destinations[i]!,
    };
  }
}

export interface Topology {
  vhost: string;
  /** By name, each with its bindings (the default exchange's are implicit: none listed). */
  exchanges: { exchange: Exchange; bindings: BindingList }[];
  queues: QueueTable;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The vhost's topology from the management API (at --api-url, or beside the broker). */
export async function fetchTopology(broker: BrokerOptions, apiUrl: string | undefined): Promise<Topology> {
  const api = await managementApi(broker, apiUrl);
  const vh = encodeURIComponent(api.vhost);
  const interner = new Interner();
  const queues = new QueueTable();
  // only the columns shown: a queue's full record (statistics, state) is many times larger
  await list(
    api,
    `queues/${vh}?columns=name,type,durable,auto_delete,exclusive,arguments,messages_ready,` +
      "messages_unacknowledged,consumers",
    "name",
    (q) => queues.add(q, interner),
  );
  queues.sort();
  const bySource = new Map<string, BindingList>();
  await list(
    api,
    `bindings/${vh}?columns=source,destination,destination_type,routing_key,arguments`,
    "source",
    (b) => {
      const source = b.source as string;
      if (source === "") return;
      let bindings = bySource.get(source);
      if (!bindings) bySource.set(source, bindings = new BindingList());
      bindings.add(b, interner, queues);
    },
  );
  const exchanges: Topology["exchanges"] = [];
  await list(api, `exchanges/${vh}?columns=name,type,durable,auto_delete,internal,arguments`, "name", (e) => {
    const exchange: Exchange = {
      name: e.name as string,
      type: e.type as string,
      durable: e.durable as boolean,
      auto_delete: e.auto_delete as boolean,
      internal: e.internal as boolean,
      arguments: interner.table(e.arguments),
    };
    const bindings = (exchange.name !== "" && bySource.get(exchange.name)) || new BindingList();
    bindings.sort();
    exchanges.push({ exchange, bindings });
  });
  exchanges.sort((a, b) => compare(a.exchange.name, b.exchange.name));
  return { vhost: api.vhost, exchanges, queues };
}

/** Reads one of the API's lists, each element checked to be a record with the string `key`. */
function list(
  api: ManagementApi,
  path: string,
  key: string,
  take: (x: Record<string, unknown>) => void,
): Promise<void> {
  const shapeless = () =>
    new KmqError(
      ExitCode.unreachable,
      `the answer of ${api.display} is JSON, but not lists of exchanges, queues and bindings: is it ` +
        "RabbitMQ's management API? (give its address with --api-url)",
    );
  return getJsonArray(api, path, (x) => {
    if (x === null || typeof x !== "object" || typeof (x as Record<string, unknown>)[key] !== "string") {
      throw shapeless();
    }
    take(x as Record<string, unknown>);
  }).catch((err) => {
    throw err instanceof NotAnArray ? shapeless() : err;
  });
}
