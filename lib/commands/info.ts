/**
 * `kmq info`: the broker's topology as a tree — vhost → exchanges → bindings → queues (or
 * exchanges), with each queue's type, messages ready and unacked, and consumers — or as JSON
 * (`-o json`), read from the management HTTP API. The counts are the API's statistics, a few
 * seconds behind the queues (the broker's collect_statistics_interval).
 */
import type { Writable } from "node:stream";
import { write } from "../term/output.ts";
import { ExitCode, KmqError, showControls } from "../term/errors.ts";
import { escapeJsonControls } from "../messages/formats.ts";
import { getJson, managementApi } from "../amqp/management.ts";
import { type Command, Option } from "@commander-js/extra-typings";
import { type Done, type GlobalOptions, globalsOf } from "./options.ts";

export interface InfoOptions extends GlobalOptions {
  /** The management API's address, when it is not the AMQP URL's host on 15672/15671. */
  apiUrl?: string;
  format: "tree" | "json";
}

export interface InfoIo {
  stdout: Writable;
}

interface ApiExchange {
  name: string;
  type: string;
  durable: boolean;
  auto_delete: boolean;
  internal: boolean;
  arguments: Record<string, unknown>;
}

interface ApiQueue {
  name: string;
  type?: string;
  durable: boolean;
  auto_delete: boolean;
  exclusive: boolean;
  arguments: Record<string, unknown>;
  messages_ready?: number;
  messages_unacknowledged?: number;
  consumers?: number;
}

interface ApiBinding extends BindingInfo {
  source: string;
}

/** A queue as kmq shows it. */
export interface QueueInfo {
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

export interface BindingInfo {
  routing_key: string;
  arguments: Record<string, unknown>;
  destination_type: "queue" | "exchange";
  destination: string;
}

export interface ExchangeInfo extends ApiExchange {
  bindings: BindingInfo[];
}

/** What `-o json` prints. */
export interface TopologyInfo {
  vhost: string;
  exchanges: ExchangeInfo[];
  queues: QueueInfo[];
}

export async function cmdInfo(o: InfoOptions, io: InfoIo): Promise<void> {
  const info = await fetchTopology(o);
  if (o.format === "json") await writeJson(info, io.stdout);
  else await writeLines(treeLines(info), io.stdout);
}

/**
 * The API's three lists, one at a time: each answer is checked and shaped, and its raw records
 * dropped, before the next is read (a 200,000-queue broker's answers are never all held at once).
 */
async function fetchTopology(o: InfoOptions): Promise<TopologyInfo> {
  const api = await managementApi(o.broker, o.apiUrl);
  const vh = encodeURIComponent(api.vhost);
  const list = async <T>(path: string, key: string): Promise<T[]> => {
    const answer = await getJson(api, path);
    const shaped = Array.isArray(answer) &&
      answer.every((x) => x !== null && typeof x === "object" && typeof x[key] === "string");
    if (!shaped) {
      throw new KmqError(
        ExitCode.unreachable,
        `the answer of ${api.display} is JSON, but not lists of exchanges, queues and bindings: is it RabbitMQ's ` +
          "management API? (give its address with --api-url)",
      );
    }
    return answer as T[];
  };
  // only the columns shown: a queue's full record (statistics, state) is many times larger
  const queues = shapeQueues(
    await list<ApiQueue>(
      `queues/${vh}?columns=name,type,durable,auto_delete,exclusive,arguments,messages_ready,` +
        "messages_unacknowledged,consumers",
      "name",
    ),
  );
  const bySource = groupBindings(
    await list<ApiBinding>(
      `bindings/${vh}?columns=source,destination,destination_type,routing_key,arguments`,
      "source",
    ),
  );
  const exchanges = shapeExchanges(
    await list<ApiExchange>(
      `exchanges/${vh}?columns=name,type,durable,auto_delete,internal,arguments`,
      "name",
    ),
    bySource,
  );
  return { vhost: api.vhost, exchanges, queues };
}

/** Lines written a batch at a time: a 200,000-queue broker's tree is never one string. */
async function writeLines(lines: Iterable<string>, out: Writable): Promise<void> {
  const encoder = new TextEncoder();
  let batch: string[] = [];
  for (const line of lines) {
    batch.push(line);
    if (batch.length === 5000) {
      await write(out, encoder.encode(batch.join("\n") + "\n"));
      batch = [];
    }
  }
  if (batch.length > 0) await write(out, encoder.encode(batch.join("\n") + "\n"));
}

/** `JSON.stringify(info, null, 2)`, written one exchange and one queue at a time. */
async function writeJson(info: TopologyInfo, out: Writable): Promise<void> {
  const item = (x: unknown, last: boolean) =>
    "    " + escapeJsonControls(JSON.stringify(x, null, 2)).replaceAll("\n", "\n    ") + (last ? "" : ",");
  function* lines(): Generator<string> {
    yield `{\n  "vhost": ${escapeJsonControls(JSON.stringify(info.vhost))},`;
    for (
      const [key, list, end] of [["exchanges", info.exchanges, ","], ["queues", info.queues, ""]] as const
    ) {
      if (list.length === 0) {
        yield `  "${key}": []${end}`;
        continue;
      }
      yield `  "${key}": [`;
      for (let i = 0; i < list.length; i++) {
        const x = list[i]!;
        yield item(key === "queues" ? queueRecord(x as QueueInfo) : x, i === list.length - 1);
      }
      yield `  ]${end}`;
    }
    yield "}";
  }
  await writeLines(lines(), out);
}

/** An exchange's bindings as shown, by destination type, destination and key (each key made once). */
function sortedBindings(list: ApiBinding[]): BindingInfo[] {
  const keyed = list.map((b) => ({
    key: `${b.destination_type}\0${b.destination}\0${b.routing_key}`,
    binding: {
      routing_key: b.routing_key,
      arguments: b.arguments ?? {},
      destination_type: b.destination_type,
      destination: b.destination,
    },
  }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return keyed.map((k) => k.binding);
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The API's queue records with the defaults filled in, in place (a copy of 200,000 would double them). */
function shapeQueues(queues: ApiQueue[]): QueueInfo[] {
  for (const q of queues) {
    q.type ??= String(q.arguments?.["x-queue-type"] ?? "classic");
    q.arguments ??= {};
    q.messages_ready ??= 0;
    q.messages_unacknowledged ??= 0;
    q.consumers ??= 0;
  }
  return (queues as QueueInfo[]).sort(byName);
}

/** A queue's fields in the order `-o json` shows them, whatever order the API sent. */
function queueRecord(q: QueueInfo): QueueInfo {
  return {
    name: q.name,
    type: q.type,
    durable: q.durable,
    auto_delete: q.auto_delete,
    exclusive: q.exclusive,
    arguments: q.arguments,
    messages_ready: q.messages_ready,
    messages_unacknowledged: q.messages_unacknowledged,
    consumers: q.consumers,
  };
}

/** Bindings by source exchange, sorted; the default exchange's (one per queue, implicit) are not kept. */
function groupBindings(bindings: ApiBinding[]): Map<string, BindingInfo[]> {
  const bySource = new Map<string, ApiBinding[]>();
  for (const b of bindings) {
    if (b.source === "") continue;
    const list = bySource.get(b.source);
    if (list) list.push(b);
    else bySource.set(b.source, [b]);
  }
  return new Map([...bySource].map(([source, list]) => [source, sortedBindings(list)]));
}

function shapeExchanges(exchanges: ApiExchange[], bySource: Map<string, BindingInfo[]>): ExchangeInfo[] {
  return exchanges.map((e) => ({
    name: e.name,
    type: e.type,
    durable: e.durable,
    auto_delete: e.auto_delete,
    internal: e.internal,
    arguments: e.arguments ?? {},
    // every queue is bound to the default exchange by its name: implicit, not listed
    bindings: e.name === "" ? [] : bySource.get(e.name) ?? [],
  })).sort(byName);
}

/** Names are shown quoted, their control characters as \xNN: a name cannot drive the terminal. */
function quoted(name: string): string {
  return `'${showControls(name)}'`;
}

function describeQueue(q: QueueInfo): string {
  const flags = [
    q.type,
    ...(q.durable ? [] : ["transient"]),
    ...(q.exclusive ? ["exclusive"] : []),
    ...(q.auto_delete ? ["auto-delete"] : []),
  ];
  return `queue ${quoted(q.name)} (${flags.join(", ")}; ${q.messages_ready} ready, ` +
    `${q.messages_unacknowledged} unacked, ${q.consumers} consumer(s))`;
}

function describeBinding(b: BindingInfo, queues: Map<string, QueueInfo>): string {
  const args = Object.entries(b.arguments);
  const key = args.length > 0
    ? `{${args.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ")}}`
    : quoted(b.routing_key);
  const q = b.destination_type === "queue" ? queues.get(b.destination) : undefined;
  const to = q ? describeQueue(q) : `${b.destination_type} ${quoted(b.destination)}`;
  return `${key} → ${to}`;
}

/**
 * The tree: each exchange with its bindings (the broker's own amq.* exchanges only when something
 * is bound to them), then the queues no exchange but the default one routes to.
 */
/** The tree's lines, one at a time (escaped: every string from the API is shown safe). */
export function* treeLines(t: TopologyInfo): Generator<string> {
  const queues = new Map(t.queues.map((q) => [q.name, q]));
  const shown = t.exchanges.filter((e) =>
    e.name !== "" && !(e.name.startsWith("amq.") && e.bindings.length === 0)
  );
  const bound = new Set<string>();
  for (const e of t.exchanges) {
    for (const b of e.bindings) if (b.destination_type === "queue") bound.add(b.destination);
  }
  const unbound = t.queues.filter((q) => !bound.has(q.name));
  bound.clear();
  yield showControls(`vhost ${quoted(t.vhost)}`);
  // each child line is made as it is written: a 200,000-binding exchange is never a list of lines
  const branches: [string, number, (i: number) => string][] = shown.map((e) => [
    `exchange ${quoted(e.name)} (${e.type}${e.durable ? ", durable" : ""}${e.internal ? ", internal" : ""}${
      e.auto_delete ? ", auto-delete" : ""
    })`,
    e.bindings.length,
    (i) => describeBinding(e.bindings[i]!, queues),
  ]);
  if (unbound.length > 0) {
    branches.push(["only the default exchange routes to", unbound.length, (i) => describeQueue(unbound[i]!)]);
  }
  for (const [i, [head, count, child]] of branches.entries()) {
    const last = i === branches.length - 1;
    yield showControls(`${last ? "└── " : "├── "}${head}`);
    for (let j = 0; j < count; j++) {
      // every string from the API (binding arguments, types) is shown safe, not only names
      yield showControls(`${last ? "    " : "│   "}${j === count - 1 ? "└── " : "├── "}${child(j)}`);
    }
  }
}

/** `kmq info`: --api-url, -o, help and examples. */
export function defineInfo(program: Command, done: Done): void {
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
      const options: InfoOptions = {
        ...globalsOf(cmd),
        apiUrl: o.apiUrl,
        format: o.format as "tree" | "json",
      };
      done({ kind: "run", verbose: options.verbose, run: (io) => cmdInfo(options, { stdout: io.stdout() }) });
    });
}
