/**
 * The definitions an import declares: narrowed to the queues asked for, renamed (--rename), classic
 * queues turned into quorum queues (--queue-type quorum), then declared over AMQP (adopting what
 * exists as defined, refusing what exists otherwise) and policies set through the management API.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import type { BrokerOptions } from "../amqp/connection.ts";
import { getJson, managementApi, putJson } from "../amqp/management.ts";
import { readyCount } from "../amqp/ready-count.ts";
import { plainJson, type PlainObject } from "../messages/exact-json.ts";
import { ExitCode, InputError, KmqError, showControls, UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { argumentsOf, nameOf, queueTypeOf, type VhostDefinitions } from "./vhost-definitions.ts";

export interface Transform {
  /** Old name → new name, for queues and exchanges alike. */
  renames: Map<string, string>;
  /** Classic queues become this type. */
  queueType?: "quorum";
  /** Import only these queues (their names in the file); empty: all. */
  only: string[];
}

/** Queue arguments a quorum queue does not take: dropped, with a note. */
const NOT_FOR_QUORUM = ["x-max-priority", "x-queue-mode", "x-queue-master-locator", "x-queue-version"];
/** Arguments that name an exchange, renamed with it. */
const EXCHANGE_ARGS = ["x-dead-letter-exchange", "alternate-exchange", "dead-letter-exchange"];

const copy = (o: PlainObject): PlainObject => Object.assign(Object.create(null), o);

/** A name AMQP cannot carry (over 255 bytes) is the file's fault: exit 3 naming it. */
function checkNames(defs: VhostDefinitions): void {
  const names = [
    ...defs.exchanges.map(nameOf),
    ...defs.queues.map(nameOf),
    ...defs.bindings.flatMap((
      b,
    ) => [String(b.source ?? ""), String(b.destination ?? ""), String(b.routing_key ?? "")]),
  ];
  const long = names.find((n) => new TextEncoder().encode(n).length > 255);
  if (long !== undefined) {
    throw new InputError(
      `the export names '${
        showControls(long.slice(0, 40))
      }…', longer than AMQP's 255 bytes: no broker holds it`,
    );
  }
}

export function transformed(defs: VhostDefinitions, t: Transform, log: Log): VhostDefinitions {
  const out = copy(defs as unknown as PlainObject) as unknown as VhostDefinitions;
  const known = new Set(defs.queues.map(nameOf));
  const missing = t.only.find((q) => !known.has(q));
  if (missing !== undefined) throw new UsageError(`--queue '${missing}': the export holds no such queue`);
  const only = new Set(t.only);
  const keep = (q: string) => only.size === 0 || only.has(q);
  const to = (name: string) => t.renames.get(name) ?? name;
  const renameArgs = (a: PlainObject) => {
    const args = copy(a);
    for (const k of EXCHANGE_ARGS) if (typeof args[k] === "string") args[k] = to(args[k] as string);
    return args;
  };
  out.exchanges = defs.exchanges.map((e) => {
    const x = copy(e);
    x.name = to(nameOf(e));
    x.arguments = renameArgs(argumentsOf(e));
    return x;
  });
  out.queues = defs.queues.filter((q) => keep(nameOf(q))).map((q) => {
    const x = copy(q);
    x.name = to(nameOf(q));
    x.arguments = renameArgs(argumentsOf(q));
    if (t.queueType === "quorum" && queueTypeOf(q) === "classic") toQuorum(x, nameOf(q), log);
    return x;
  });
  out.bindings = defs.bindings.filter((b) => b.destination_type === "exchange" || keep(String(b.destination)))
    .map((b) => {
      const x = copy(b);
      x.source = to(String(b.source ?? ""));
      x.destination = to(String(b.destination ?? ""));
      return x;
    });
  checkNames(out);
  out.policies = defs.policies.map((p) => {
    const x = copy(p);
    const d = p.definition;
    if (d !== null && typeof d === "object" && !Array.isArray(d)) x.definition = renameArgs(d);
    return x;
  });
  return out;
}

function toQuorum(q: PlainObject, was: string, log: Log): void {
  const refuse = (why: string) =>
    new UsageError(
      `queue '${was}' is ${why}: a quorum queue cannot be; leave it out (import --queue for the others) ` +
        "or import without --queue-type",
    );
  if (q.auto_delete === true) throw refuse("auto-delete");
  if (q.durable === false) throw refuse("not durable");
  if (q.exclusive === true) throw refuse("exclusive");
  const args = argumentsOf(q);
  if (args["x-overflow"] === "reject-publish-dlx") throw refuse("x-overflow reject-publish-dlx");
  const dropped = NOT_FOR_QUORUM.filter((k) => k in args);
  for (const k of dropped) delete args[k];
  args["x-queue-type"] = "quorum";
  q.arguments = args;
  if (dropped.length > 0) log.warn(`queue '${was}' becomes a quorum queue without ${dropped.join(", ")}`);
}

/** What declaring found: each queue's messages and consumers already there (by its name on the target). */
export type Depths = Map<string, { messages: number; consumers: number }>;

/** Declares exchanges, queues, then bindings; a conflict is exit 6 naming the entity. */
export async function declareDefinitions(client: AMQPClient, defs: VhostDefinitions): Promise<Depths> {
  const depths: Depths = new Map();
  const step = async <T>(
    what: string,
    act: (ch: Awaited<ReturnType<AMQPClient["channel"]>>) => Promise<T>,
  ) => {
    const ch = await client.channel();
    try {
      return await act(ch);
    } catch (err) {
      const reason = String((err as Error).message ?? err).replace(/^channel \d+ closed: /, "");
      throw new KmqError(
        ExitCode.brokerRefused,
        `${what} on the target: ${showControls(reason)}; ` +
          "delete or rename it there (or --rename it on the way in), then import again",
      );
    } finally {
      await ch.close().catch(() => {});
    }
  };
  for (const e of defs.exchanges) {
    const name = nameOf(e);
    if (name === "" || name.startsWith("amq.")) continue;
    await step(`exchange '${name}' could not be declared`, (ch) =>
      ch.exchangeDeclare(name, String(e.type), {
        durable: e.durable !== false,
        autoDelete: e.auto_delete === true,
        internal: e.internal === true,
      }, argumentsOf(e)));
  }
  for (const q of defs.queues) {
    const name = nameOf(q);
    const ok = await step(`queue '${name}' could not be declared`, (ch) =>
      ch.queueDeclare(name, {
        durable: q.durable !== false,
        autoDelete: q.auto_delete === true,
        exclusive: false,
      }, argumentsOf(q)));
    // what a resume counts against: a silent quorum leader's "0, 0" would count its messages as imported
    const messages = ok.messageCount === 0 && ok.consumerCount === 0 && queueTypeOf(q) === "quorum"
      ? await client.channel().then(async (ch) => {
        const ready = await readyCount(ch, name, { quorum: true });
        await ch.close().catch(() => {});
        return ready;
      })
      : ok.messageCount;
    depths.set(name, { messages, consumers: ok.consumerCount });
  }
  for (const b of defs.bindings) {
    const [source, destination, key] = [String(b.source), String(b.destination), String(b.routing_key ?? "")];
    if (source === "") continue; // the default exchange's bindings are implicit
    const what = `binding ${source} → ${b.destination_type} ${destination} ('${key}') could not be made`;
    await step(
      what,
      (ch) =>
        b.destination_type === "exchange"
          ? ch.exchangeBind(destination, source, key, argumentsOf(b))
          : ch.queueBind(destination, source, key, argumentsOf(b)),
    );
  }
  return depths;
}

/** A policy as compared: what it matches and what it sets, keys in order. */
function policyKey(p: Record<string, unknown>): string {
  const sorted = (v: unknown): unknown =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])]))
      : typeof v === "bigint"
      ? v.toString()
      : v;
  return JSON.stringify(sorted({
    pattern: p.pattern,
    "apply-to": p["apply-to"] ?? "all",
    priority: Number(p.priority ?? 0),
    definition: p.definition,
  }));
}

/**
 * Sets the policies through the target's management API (PUT /api/policies/VHOST/NAME); one that
 * exists as defined is left, one that exists otherwise is exit 6 (it would be replaced silently).
 */
export async function importPolicies(broker: BrokerOptions, defs: VhostDefinitions): Promise<number> {
  if (defs.policies.length === 0) return 0;
  const api = await managementApi(broker);
  const vhost = encodeURIComponent(api.vhost);
  const existing = new Map(
    (await getJson(api, `policies/${vhost}`) as Record<string, unknown>[]).map((p) => [String(p.name), p]),
  );
  for (const p of defs.policies) {
    const name = nameOf(p);
    const there = existing.get(name);
    if (there && policyKey(there) === policyKey(p)) continue;
    if (there) {
      throw new KmqError(
        ExitCode.brokerRefused,
        `policy '${showControls(name)}' exists on the target with another pattern or definition: ` +
          "delete it there, or import with --no-policies",
      );
    }
    const body = copy(p);
    delete body.name;
    delete body.vhost;
    await putJson(api, `policies/${vhost}/${encodeURIComponent(name)}`, plainJson(body));
  }
  return defs.policies.length;
}
