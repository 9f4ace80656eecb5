/**
 * A virtual host's topology as RabbitMQ's definitions give it (`rabbitmqctl export_definitions`,
 * the management UI's export, or GET /api/definitions/VHOST): exchanges, queues, bindings and
 * policies. Names are the broker's data: every table here is a Map, so no name (`__proto__`
 * included) can collide with an object's own machinery.
 */
import { readFile, stat } from "node:fs/promises";
import type { BrokerOptions } from "../amqp/connection.ts";
import { getJson, managementApi } from "../amqp/management.ts";
import { InputError } from "../term/errors.ts";

export type Args = Map<string, unknown>;

/** The largest definitions file read, as for the management API's answer: a broker's is far smaller. */
const MAX_FILE = 256 * 1024 * 1024;

export interface ExchangeDef {
  type: string;
  arguments: Args;
}

export interface BindingDef {
  source: string;
  destination: string;
  destinationType: "queue" | "exchange";
  routingKey: string;
  arguments: Args;
}

export interface PolicyDef {
  name: string;
  pattern: RegExp;
  applyTo: "all" | "exchanges" | "queues" | "classic_queues" | "quorum_queues" | "streams";
  priority: number;
  definition: Args;
}

export interface Definitions {
  vhost: string;
  exchanges: Map<string, ExchangeDef>;
  queues: Map<string, { arguments: Args }>;
  bindings: BindingDef[];
  policies: PolicyDef[];
}

/** The broker's own exchanges, which definitions leave out. */
const BUILT_IN: [string, string][] = [
  ["amq.direct", "direct"],
  ["amq.fanout", "fanout"],
  ["amq.topic", "topic"],
  ["amq.headers", "headers"],
  ["amq.match", "headers"],
  ["amq.rabbitmq.trace", "topic"],
];

/** Reads a definitions file (JSON) and keeps what belongs to `vhost`. */
export async function definitionsFromFile(path: string, vhost: string): Promise<Definitions> {
  let text: string;
  try {
    // checked before reading: a mistaken path (a disk image, /dev/zero) must not fill memory
    const info = await stat(path);
    if (!info.isFile() || info.size > MAX_FILE) {
      throw new InputError(
        `--definitions '${path}' is ${
          info.isFile() ? `${info.size} bytes, more than a definitions file` : "not a file"
        }: ` +
          "give a file from 'rabbitmqctl export_definitions' or the management UI",
      );
    }
    text = await readFile(path, "utf8");
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`cannot read --definitions '${path}': ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InputError(
      `--definitions '${path}' is not JSON: give a file from 'rabbitmqctl export_definitions' or the management UI`,
    );
  }
  return parseDefinitions(json, vhost, `--definitions '${path}'`);
}

/** The vhost's definitions from the management API (the vhost of the broker URL). */
export async function definitionsFromApi(broker: BrokerOptions): Promise<Definitions> {
  const api = await managementApi(broker);
  const json = await getJson(api, `definitions/${encodeURIComponent(api.vhost)}`);
  // a vhost's own export names no vhost on its entities: they are all this one's
  return parseDefinitions(json, api.vhost, `the management API at ${api.display}`, true);
}

const list = (v: unknown): Record<string, unknown>[] =>
  Array.isArray(v) ? v.filter((x): x is Record<string, unknown> => x !== null && typeof x === "object") : [];

const argsOf = (v: unknown): Args =>
  new Map(v !== null && typeof v === "object" && !Array.isArray(v) ? Object.entries(v) : []);

/** Definitions JSON of either shape (a whole broker's, or one vhost's), for `vhost`. */
export function parseDefinitions(json: unknown, vhost: string, from: string, oneVhost = false): Definitions {
  if (
    json === null || typeof json !== "object" || !Array.isArray((json as { exchanges?: unknown }).exchanges)
  ) {
    throw new InputError(`${from} holds no definitions (no "exchanges" list)`);
  }
  const all = json as Record<string, unknown>;
  const mine = (e: Record<string, unknown>) => oneVhost || e.vhost === undefined || e.vhost === vhost;
  const defs: Definitions = { vhost, exchanges: new Map(), queues: new Map(), bindings: [], policies: [] };
  for (const [name, type] of BUILT_IN) defs.exchanges.set(name, { type, arguments: new Map() });
  for (const e of list(all.exchanges).filter(mine)) {
    defs.exchanges.set(String(e.name), { type: String(e.type), arguments: argsOf(e.arguments) });
  }
  for (const q of list(all.queues).filter(mine)) {
    defs.queues.set(String(q.name), { arguments: argsOf(q.arguments) });
  }
  for (const b of list(all.bindings).filter(mine)) {
    defs.bindings.push({
      source: String(b.source ?? ""),
      destination: String(b.destination ?? ""),
      destinationType: b.destination_type === "exchange" ? "exchange" : "queue",
      routingKey: String(b.routing_key ?? ""),
      arguments: argsOf(b.arguments),
    });
  }
  for (const p of list(all.policies).filter(mine)) {
    let pattern: RegExp;
    try {
      pattern = new RegExp(String(p.pattern ?? ""));
    } catch {
      continue; // a pattern JavaScript cannot read (Erlang's PCRE has more): it is not applied
    }
    defs.policies.push({
      name: String(p.name),
      pattern,
      applyTo: (String(p["apply-to"] ?? "all")) as PolicyDef["applyTo"],
      priority: Number(p.priority ?? 0),
      definition: argsOf(p.definition),
    });
  }
  return defs;
}

/** The policy RabbitMQ applies to an exchange or queue: the matching one of highest priority. */
export function policyFor(
  defs: Definitions,
  kind: "exchange" | "queue",
  name: string,
): PolicyDef | undefined {
  const fits = (p: PolicyDef) =>
    p.applyTo === "all" || (kind === "exchange" ? p.applyTo === "exchanges" : p.applyTo !== "exchanges");
  return defs.policies.filter((p) => fits(p) && p.pattern.test(name)).sort((a, b) =>
    b.priority - a.priority
  )[0];
}

/** A setting of an exchange or queue: its `x-`/plain argument first, else the policy's key. */
export function setting(
  defs: Definitions,
  kind: "exchange" | "queue",
  name: string,
  argument: string,
  policyKey: string,
): { value: unknown; from: string } | undefined {
  const args = kind === "exchange" ? defs.exchanges.get(name)?.arguments : defs.queues.get(name)?.arguments;
  if (args?.has(argument)) return { value: args.get(argument), from: `its ${argument} argument` };
  const policy = policyFor(defs, kind, name);
  if (policy?.definition.has(policyKey)) {
    return { value: policy.definition.get(policyKey), from: `policy '${policy.name}'` };
  }
  return undefined;
}
