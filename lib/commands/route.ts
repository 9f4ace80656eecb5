/**
 * `kmq route -e EXCHANGE -r KEY [-H k=v]...`: where a message would go, binding by binding, from
 * the vhost's definitions (the management API, or a definitions file) — nothing is published.
 */
import { type Command, Option } from "@commander-js/extra-typings";
import type { Writable } from "node:stream";
import { parseBrokerUrls } from "../amqp/connection.ts";
import { DEFAULTS } from "../amqp/declarations.ts";
import { escapeJsonControls } from "../messages/formats.ts";
import type { FieldTable, FieldValue } from "../messages/fields.ts";
import { type Definitions, definitionsFromApi, definitionsFromFile, setting } from "../route/definitions.ts";
import { type Hop, route, type RouteMessage } from "../route/router.ts";
import { ExitCode, KmqError, showControls } from "../term/errors.ts";
import { write } from "../term/output.ts";
import { type Done, type GlobalOptions, globalsOf, parseHeader, shortString } from "./options.ts";

export interface RouteOptions extends GlobalOptions {
  exchange: string;
  routingKey: string;
  headers: FieldTable;
  /** A definitions file instead of the management API. */
  definitions?: string;
  /** Route a dead letter of this queue: from its dead-letter exchange. */
  deadLetters?: string;
  format: "tree" | "json";
}

export async function cmdRoute(o: RouteOptions, io: { stdout: Writable }): Promise<void> {
  // checked as for a connection (a bad URL is exit 2), though a definitions file needs none
  const [first] = parseBrokerUrls(o.broker.url, "kmq route");
  const vhost = decodeURIComponent(new URL(first!.href).pathname.slice(1)) || "/";
  const defs = o.definitions !== undefined
    ? await definitionsFromFile(o.definitions, vhost)
    : await definitionsFromApi(o.broker);
  const { exchange, msg, via } = start(defs, o);
  if (exchange !== "" && !defs.exchanges.has(exchange)) {
    throw new KmqError(
      ExitCode.brokerRefused,
      `exchange '${showControls(exchange)}' does not exist in vhost '${showControls(defs.vhost)}': ` +
        "a publish to it would close the channel (NOT_FOUND); check the name and the vhost",
    );
  }
  const r = route(defs, exchange, msg);
  const text = o.format === "json"
    ? escapeJsonControls(
      JSON.stringify(
        {
          exchange,
          routing_key: msg.routingKey,
          ...via,
          queues: r.queues,
          exchanges: r.exchanges,
          route: jsonHop(r.hop),
        },
        replacer,
        2,
      ),
    ) + "\n"
    : render(exchange, msg, r.hop, r.queues, via);
  await write(io.stdout, new TextEncoder().encode(text));
}

/** Where routing starts: the exchange and key given, or a queue's dead-letter exchange and key. */
function start(defs: Definitions, o: RouteOptions): { exchange: string; msg: RouteMessage; via?: object } {
  const headers = new Map<string, FieldValue>(Object.entries(o.headers));
  if (o.deadLetters === undefined) {
    return { exchange: o.exchange, msg: { routingKey: o.routingKey, headers } };
  }
  const q = o.deadLetters;
  if (!defs.queues.has(q)) {
    throw new KmqError(
      ExitCode.brokerRefused,
      `queue '${showControls(q)}' does not exist in vhost '${defs.vhost}'`,
    );
  }
  const dlx = setting(defs, "queue", q, "x-dead-letter-exchange", "dead-letter-exchange");
  if (dlx === undefined) {
    throw new KmqError(
      ExitCode.brokerRefused,
      `queue '${
        showControls(q)
      }' has no dead-letter exchange (no x-dead-letter-exchange argument, no policy ` +
        "setting dead-letter-exchange): its dead letters are dropped",
    );
  }
  const dlrk = setting(defs, "queue", q, "x-dead-letter-routing-key", "dead-letter-routing-key");
  const routingKey = dlrk === undefined ? o.routingKey : String(dlrk.value);
  const via = { dead_letters_of: q, dead_letter_exchange_from: dlx.from };
  return { exchange: String(dlx.value), msg: { routingKey, headers }, via };
}

/** The tree as JSON, in the snake_case of kmq's other JSON (and the broker's). */
function jsonHop(hop: Hop | undefined): unknown {
  if (!hop) return null;
  return {
    exchange: hop.exchange,
    type: hop.type,
    ...(hop.seen ? { reached_before: true } : {}),
    bindings: hop.steps.map((s) => ({
      destination_type: s.binding.destinationType,
      destination: s.binding.destination,
      routing_key: s.binding.routingKey,
      arguments: s.binding.arguments,
      matched: s.verdict.matched,
      why: s.verdict.why,
      ...(s.next ? { next: jsonHop(s.next) } : {}),
    })),
    ...(hop.alternate
      ? {
        alternate_exchange: {
          name: hop.alternate.name,
          from: hop.alternate.from,
          ...(hop.alternate.missing ? { missing: true } : { route: jsonHop(hop.alternate.hop) }),
        },
      }
      : {}),
  };
}

const replacer = (_k: string, v: unknown) =>
  typeof v === "bigint" ? v.toString() : v instanceof Map ? Object.fromEntries(v) : v;

function render(
  exchange: string,
  msg: RouteMessage,
  hop: Hop | undefined,
  queues: string[],
  via?: object,
): string {
  const lines: string[] = [];
  const dl = via as { dead_letters_of?: string; dead_letter_exchange_from?: string } | undefined;
  if (dl?.dead_letters_of) {
    lines.push(
      `dead letters of queue '${dl.dead_letters_of}' go to exchange '${exchange}' (${dl.dead_letter_exchange_from}) with key '${msg.routingKey}'`,
    );
  }
  if (hop) lines.push(...renderHop(hop, ""));
  else {lines.push(
      `the default exchange: routing key '${msg.routingKey}' names ${queues.length ? "queue" : "no queue"}`,
    );}
  lines.push(
    queues.length > 0
      ? `reaches ${queues.length} queue(s): ${queues.map((q) => `'${q}'`).join(", ")}`
      : "unroutable: reaches no queue (returned to a mandatory publisher, such as kmq produce; dropped otherwise)",
  );
  // every name and value comes from the broker or the definitions: shown safe
  return lines.map(showControls).join("\n") + "\n";
}

function renderHop(hop: Hop, indent: string): string[] {
  const lines = [
    `exchange '${hop.exchange}' (${hop.type})${hop.seen ? ": reached before, not routed again" : ""}`,
  ];
  const children: string[][] = hop.steps.map((s) => {
    const b = s.binding;
    const key = b.arguments.size > 0 && hop.type === "headers"
      ? `{${[...b.arguments].map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ")}}`
      : `'${b.routingKey}'`;
    const head = `${key} → ${b.destinationType} '${b.destination}': ${
      s.verdict.matched ? "yes" : "no"
    }, ${s.verdict.why}`;
    // the binding's line names the exchange it leads to: its own tree follows without a header
    if (!s.next) return [head];
    const [, ...below] = renderHop(s.next, "");
    return [
      s.next.seen ? `${head} (reached before, not routed again)` : `${head} (${s.next.type})`,
      ...below,
    ];
  });
  if (hop.steps.length === 0 && !hop.seen) children.push(["no bindings"]);
  if (hop.alternate) {
    const a = hop.alternate;
    const head = `nothing took it: alternate exchange '${a.name}' (${a.from})${
      a.missing ? ", which does not exist" : ""
    }`;
    children.push(a.hop ? [head, ...renderHop(a.hop, "")] : [head]);
  }
  children.forEach((c, i) => {
    const last = i === children.length - 1;
    c.forEach((line, j) =>
      lines.push(`${indent}${j === 0 ? (last ? "└── " : "├── ") : (last ? "    " : "│   ")}${line}`)
    );
  });
  return lines;
}

export function defineRoute(program: Command, done: Done): void {
  program.command("route")
    .description("show where a message would go, binding by binding (nothing is published)")
    .option(
      "-e, --exchange <name>",
      "the exchange it is published to",
      shortString("--exchange"),
      DEFAULTS.exchange as string,
    )
    .option(
      "-r, --routing-key <key>",
      "its routing key",
      shortString("--routing-key"),
      DEFAULTS.routingKey as string,
    )
    .option("-H, --header <key=value>", "a header; key:=json for a typed value (repeatable)", parseHeader, {})
    .option(
      "--definitions <file>",
      "read the topology from this definitions file (rabbitmqctl export_definitions)",
    )
    .option(
      "--api-url <url>",
      "the management API (default: the broker URL's host on 15672, or 15671 for amqps)",
    )
    .option(
      "--dead-letters <queue>",
      "route a dead letter of this queue (from its dead-letter exchange)",
      shortString("--dead-letters"),
    )
    .addOption(
      new Option("-o, --format <format>", "output: tree, or json").choices(["tree", "json"] as const).default(
        "tree" as const,
      ),
    )
    .addHelpText(
      "after",
      `
The topology comes from the management API (as kmq info), or from --definitions, so a file from another
environment can be checked too. Exchange-to-exchange bindings are followed and the alternate exchange is
taken when nothing else is; each binding says why it took the message or not. -o json has "queues".

Examples:
  kmq route -e events -r order.created
  kmq route -e tenants -H tenant=acme -H tier:=2 -o json
  kmq route --definitions prod-definitions.json -e events -r user.deleted
  kmq route --dead-letters orders -r order.created`,
    )
    .action((o, cmd) => {
      const g = globalsOf(cmd);
      const options: RouteOptions = {
        ...g,
        broker: o.apiUrl === undefined ? g.broker : { ...g.broker, apiUrl: o.apiUrl },
        exchange: o.exchange,
        routingKey: o.routingKey,
        headers: o.header,
        definitions: o.definitions,
        deadLetters: o.deadLetters,
        format: o.format,
      };
      done({
        kind: "run",
        verbose: options.verbose,
        run: (io) => cmdRoute(options, { stdout: io.stdout() }),
      });
    });
}
