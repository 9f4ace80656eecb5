/**
 * `kmq info`: the broker's topology as a tree — vhost → exchanges → bindings → queues (or
 * exchanges), with each queue's type, messages ready and unacked, and consumers — or as JSON
 * (`-o json`), read from the management HTTP API. The counts are the API's statistics, a few
 * seconds behind the queues (the broker's collect_statistics_interval).
 */
import type { Writable } from "node:stream";
import { write } from "../term/output.ts";
import { showControls } from "../term/errors.ts";
import { escapeJsonControls } from "../messages/formats.ts";
import {
  type Binding,
  BindingList,
  type Exchange,
  fetchTopology,
  type Queue,
  type Topology,
} from "../info/topology.ts";
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

export async function cmdInfo(o: InfoOptions, io: InfoIo): Promise<void> {
  const topology = await fetchTopology(o.broker, o.apiUrl);
  await writeLines(o.format === "json" ? jsonLines(topology) : treeLines(topology), io.stdout);
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

/** `x` as `JSON.stringify(x, null, 2)` with DEL and C1 escaped, each line indented by `by` spaces. */
function indented(x: unknown, by: number): string {
  const pad = " ".repeat(by);
  return pad + escapeJsonControls(JSON.stringify(x, null, 2)).replaceAll("\n", "\n" + pad);
}

/**
 * `JSON.stringify({vhost, exchanges, queues}, null, 2)`, made a binding and a queue at a time:
 * an exchange with 200,000 bindings is never one string.
 */
function* jsonLines(t: Topology): Generator<string> {
  yield `{\n  "vhost": ${escapeJsonControls(JSON.stringify(t.vhost))},`;
  if (t.exchanges.length === 0) yield `  "exchanges": [],`;
  else {
    yield `  "exchanges": [`;
    for (const [i, { exchange, bindings }] of t.exchanges.entries()) {
      yield* exchangeJson(exchange, bindings, i === t.exchanges.length - 1 ? "" : ",");
    }
    yield `  ],`;
  }
  const { queues } = t;
  if (queues.length === 0) yield `  "queues": []`;
  else {
    yield `  "queues": [`;
    for (const [i, q] of queues.order.entries()) {
      yield indented(queues.at(q), 4) + (i === queues.length - 1 ? "" : ",");
    }
    yield `  ]`;
  }
  yield "}";
}

function* exchangeJson(e: Exchange, bindings: BindingList, comma: string): Generator<string> {
  // the exchange's own fields, its closing brace cut off, then "bindings" as the last field
  const head = indented(e, 4).slice(0, -"\n    }".length) + ",\n";
  if (bindings.length === 0) {
    yield `${head}      "bindings": []\n    }${comma}`;
    return;
  }
  yield `${head}      "bindings": [`;
  for (const [j, b] of bindings.order.entries()) {
    yield indented(bindings.at(b), 8) + (j === bindings.length - 1 ? "" : ",");
  }
  yield "      ]";
  yield `    }${comma}`;
}

/** Names are shown quoted, their control characters as \xNN: a name cannot drive the terminal. */
function quoted(name: string): string {
  return `'${showControls(name)}'`;
}

function describeQueue(q: Queue): string {
  const flags = [
    q.type,
    ...(q.durable ? [] : ["transient"]),
    ...(q.exclusive ? ["exclusive"] : []),
    ...(q.auto_delete ? ["auto-delete"] : []),
  ];
  return `queue ${quoted(q.name)} (${flags.join(", ")}; ${q.messages_ready} ready, ` +
    `${q.messages_unacknowledged} unacked, ${q.consumers} consumer(s))`;
}

function describeBinding(b: Binding, t: Topology): string {
  const args = Object.entries(b.arguments);
  const key = args.length > 0
    ? `{${args.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ")}}`
    : quoted(b.routing_key);
  const q = b.destination_type === "queue" ? t.queues.byName.get(b.destination) : undefined;
  const to = q !== undefined
    ? describeQueue(t.queues.at(q))
    : `${b.destination_type} ${quoted(b.destination)}`;
  return `${key} → ${to}`;
}

/**
 * The tree's lines, one at a time: each exchange with its bindings (the broker's own amq.*
 * exchanges only when something is bound to them), then the queues no exchange but the default
 * one routes to. Every string from the API is shown escaped, not only names.
 */
export function* treeLines(t: Topology): Generator<string> {
  const shown = t.exchanges.filter(({ exchange: e, bindings }) =>
    e.name !== "" && !(e.name.startsWith("amq.") && bindings.length === 0)
  );
  const bound = new Uint8Array(t.queues.length);
  for (const { bindings } of t.exchanges) {
    for (let i = 0; i < bindings.length; i++) {
      const q = bindings.types[i] === "queue" ? t.queues.byName.get(bindings.destinations[i]!) : undefined;
      if (q !== undefined) bound[q] = 1;
    }
  }
  const unbound = t.queues.order.filter((q) => bound[q] === 0);
  yield showControls(`vhost ${quoted(t.vhost)}`);
  // each child line is made as it is written: a 200,000-binding exchange is never a list of lines
  const branches: [string, number, (i: number) => string][] = shown.map(({ exchange: e, bindings }) => [
    `exchange ${quoted(e.name)} (${e.type}${e.durable ? ", durable" : ""}${e.internal ? ", internal" : ""}${
      e.auto_delete ? ", auto-delete" : ""
    })`,
    bindings.length,
    (i) => describeBinding(bindings.at(bindings.order[i]!), t),
  ]);
  if (unbound.length > 0) {
    branches.push([
      "only the default exchange routes to",
      unbound.length,
      (i) => describeQueue(t.queues.at(unbound[i]!)),
    ]);
  }
  for (const [i, [head, count, child]] of branches.entries()) {
    const last = i === branches.length - 1;
    yield showControls(`${last ? "└── " : "├── "}${head}`);
    for (let j = 0; j < count; j++) {
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
