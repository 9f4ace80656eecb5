/**
 * A vhost's definitions as an export carries them: RabbitMQ's own JSON (GET /api/definitions/VHOST,
 * the shape `rabbitmqctl import_definitions` reads), kept exactly — keys such as `__proto__`
 * survive, integers past 2^53 stay exact — and narrowed to the queues chosen.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import type { BrokerOptions } from "../amqp/connection.ts";
import { getJson, managementApi } from "../amqp/management.ts";
import { matchQueue } from "../amqp/mismatch.ts";
import { parseExact, type PlainObject, type PlainValue, toPlain } from "../messages/exact-json.ts";
import { ExitCode, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";

/** How long the management API may take to list a large vhost's definitions. */
const DEFINITIONS_MS = 60_000;

export interface VhostDefinitions {
  queues: PlainObject[];
  exchanges: PlainObject[];
  bindings: PlainObject[];
  policies: PlainObject[];
  /** Where they came from: the management API, or AMQP (queues only). */
  from: "api" | "amqp";
  [key: string]: PlainValue | undefined;
}

const objects = (v: PlainValue | undefined): PlainObject[] =>
  Array.isArray(v)
    ? v.filter((x): x is PlainObject => x !== null && typeof x === "object" && !Array.isArray(x))
    : [];

/** A definitions object from JSON data (an export's definitions line, or the API's answer). */
export function definitionsOf(v: PlainValue, from: "api" | "amqp"): VhostDefinitions {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new KmqError(ExitCode.badInput, "the definitions are not a JSON object");
  }
  const defs = Object.assign(Object.create(null), v) as VhostDefinitions;
  defs.queues = objects(v.queues);
  defs.exchanges = objects(v.exchanges);
  defs.bindings = objects(v.bindings);
  defs.policies = objects(v.policies);
  defs.from = from;
  return defs;
}

export const nameOf = (entity: PlainObject): string => String(entity.name ?? "");

export function argumentsOf(entity: PlainObject): PlainObject {
  const a = entity.arguments;
  return a !== null && typeof a === "object" && !Array.isArray(a) ? a : Object.create(null);
}

export const queueTypeOf = (q: PlainObject): string => String(argumentsOf(q)["x-queue-type"] ?? "classic");

/**
 * The vhost's definitions from the management API; when it does not answer and queues are
 * named, each queue's type and arguments learned over AMQP (no exchanges, bindings or policies).
 */
export async function readDefinitions(
  client: AMQPClient,
  broker: BrokerOptions,
  chosen: string[],
  log: Log,
  match?: RegExp,
): Promise<VhostDefinitions> {
  let defs: VhostDefinitions;
  try {
    const api = await managementApi(broker);
    const json = await getJson(
      api,
      `definitions/${encodeURIComponent(api.vhost)}`,
      DEFINITIONS_MS,
      (text) => toPlain(parseExact(text)),
    );
    defs = definitionsOf(json as PlainValue, "api");
  } catch (err) {
    if (!(err instanceof KmqError) || err.exitCode !== ExitCode.unreachable || chosen.length === 0) throw err;
    if (match) throw new KmqError(err.exitCode, `--queue-regex lists the vhost's queues: ${err.message}`);
    log.warn(
      `${
        err.message.replace(/: enable it.*$/, "")
      }: exporting the queues named with --queue, their types and ` +
        "arguments learned over AMQP (no exchanges, bindings or policies)",
    );
    defs = definitionsOf({ queues: [], exchanges: [], bindings: [], policies: [] }, "amqp");
    for (const name of chosen) defs.queues.push(await queueOverAmqp(client, name));
    return defs;
  }
  const names = match ? defs.queues.map(nameOf).filter((q) => match.test(q)) : [];
  if (match && names.length === 0) {
    throw new KmqError(
      ExitCode.brokerRefused,
      `--queue-regex ${match.source}: no queue of the vhost matches`,
    );
  }
  const all = [...new Set([...chosen, ...names])];
  return all.length === 0 ? defs : narrowed(defs, all);
}

async function queueOverAmqp(client: AMQPClient, name: string): Promise<PlainObject> {
  const ch = await client.channel();
  try {
    await ch.queueDeclare(name, { passive: true });
  } catch {
    throw new KmqError(
      ExitCode.brokerRefused,
      `queue '${name}' does not exist: check the name and the vhost`,
    );
  } finally {
    await ch.close().catch(() => {});
  }
  const found = await matchQueue(client, name, {
    flags: { durable: true, autoDelete: false, exclusive: false },
    args: {},
  });
  const q = Object.create(null) as PlainObject;
  Object.assign(q, {
    name,
    durable: found.flags.durable,
    auto_delete: found.flags.autoDelete,
    arguments: Object.assign(Object.create(null), found.args) as PlainObject,
  });
  return q;
}

/** Only the queues chosen, and the bindings to them; exchanges and their own bindings all stay. */
function narrowed(defs: VhostDefinitions, chosen: string[]): VhostDefinitions {
  const wanted = new Set(chosen);
  const known = new Set(defs.queues.map(nameOf));
  const missing = chosen.find((q) => !known.has(q));
  if (missing !== undefined) {
    throw new KmqError(
      ExitCode.brokerRefused,
      `queue '${missing}' is not in the vhost's definitions (exclusive queues are not exported): check the name`,
    );
  }
  defs.queues = defs.queues.filter((q) => wanted.has(nameOf(q)));
  defs.bindings = defs.bindings.filter((b) =>
    b.destination_type === "exchange" || wanted.has(String(b.destination ?? ""))
  );
  return defs;
}
