/**
 * What bindings exist between two entities, from the management HTTP API: AMQP removes a binding
 * that is there and ignores one that is not, without a word, so only the API can say which.
 */
import { KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import type { BrokerOptions } from "./connection.ts";
import { getJson, managementApi } from "./management.ts";

/** How long the API may take to answer before kmq goes on without it. */
const CHECK_TIMEOUT_MS = 3_000;

/** One end of a binding: the destination of -e's messages. */
export interface BindingTarget {
  kind: "queue" | "exchange";
  name: string;
}

/** A binding as the broker keys it: routing key and arguments. */
export interface BindingKey {
  key: string;
  args: Record<string, unknown>;
}

/**
 * The bindings from exchange `source` to `target`, or undefined when the management API cannot
 * be asked (kmq then says so, and goes on unchecked). An --api-url given explicitly must answer.
 */
export async function existingBindings(
  broker: BrokerOptions,
  source: string,
  target: BindingTarget,
  log: Log,
): Promise<BindingKey[] | undefined> {
  const api = await managementApi(broker);
  const path = `bindings/${encodeURIComponent(api.vhost)}/e/${encodeURIComponent(source)}/` +
    `${target.kind === "queue" ? "q" : "e"}/${encodeURIComponent(target.name)}`;
  let rows: unknown;
  try {
    rows = await getJson(api, path, CHECK_TIMEOUT_MS);
  } catch (err) {
    if (broker.apiUrl !== undefined || !(err instanceof KmqError)) throw err;
    log.warn(`${err.message.replace(/: enable it .*$/, "")}: cannot check that the binding exists`);
    return undefined;
  }
  if (!Array.isArray(rows)) return [];
  return rows.map((row: { routing_key?: unknown; arguments?: unknown }) => ({
    key: String(row.routing_key ?? ""),
    args: (row.arguments && typeof row.arguments === "object" ? row.arguments : {}) as Record<
      string,
      unknown
    >,
  }));
}

/** Whether two bindings are one: the same key and the same arguments, whatever their order. */
export function sameBinding(a: BindingKey, b: BindingKey): boolean {
  return a.key === b.key && canonical(a.args) === canonical(b.args);
}

/** How a binding is named in a message: `'key'`, or `'key' {args}` when it has arguments. */
export function describeBinding(b: BindingKey): string {
  return Object.keys(b.args).length === 0 ? `'${b.key}'` : `'${b.key}' ${canonical(b.args)}`;
}

function canonical(value: unknown): string {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
