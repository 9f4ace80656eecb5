/**
 * `kmq redrive --from DLQ`: each dead letter back to the queue it died in, acked in the DLQ only
 * once that queue's broker confirmed it (the move engine); `--dry-run` reports by origin and
 * reason and changes nothing.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { type Command, Option } from "@commander-js/extra-typings";
import type { Writable } from "node:stream";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { guardRequeues, queueFacts } from "../amqp/queue-facts.ts";
import { escapeJsonControls } from "../messages/formats.ts";
import type { MoveIo } from "../move/move-options.ts";
import { runMove } from "../move/run-move.ts";
import { groupJson, groupLines, Redriver, type RedriveSelection } from "../redrive/redriver.ts";
import { classifyError, ExitCode, KmqError, showControls, UsageError } from "../term/errors.ts";
import { write } from "../term/output.ts";
import {
  collect,
  type Done,
  type GlobalOptions,
  globalsOf,
  integer,
  positive,
  retryAndStopOptions,
  shortString,
} from "./options.ts";

export interface RedriveOptions extends GlobalOptions {
  from: string;
  selection: Omit<RedriveSelection, "filter">;
  filter?: string;
  count?: number;
  rate?: number;
  dryRun: boolean;
  format: "text" | "json";
  retryTimeout: number;
  stopTimeout: number;
  acceptDeliveryCount: boolean;
}

export interface RedriveIo extends MoveIo {
  stdout: Writable;
}

export async function cmdRedrive(o: RedriveOptions, io: RedriveIo): Promise<void> {
  const filter = o.filter === undefined
    ? undefined
    : new (await import("../messages/filter.ts")).MessageFilter(o.filter);
  const selection = { ...o.selection, filter };
  const checker = await connect({ broker: o.broker, name: "kmq redrive", log: io.log });
  try {
    const sendBack = !o.dryRun && await returnsCount(checker, o, io);
    const redriver = new Redriver(o.from, selection, (queue) => queueExists(checker, queue), sendBack);
    if (o.dryRun) return await dryRun(o, io, checker, redriver);
    try {
      await runMove({
        ...o,
        to: undefined,
        toExchange: "",
        routingKey: undefined,
        toBroker: o.broker,
        idleTimeout: undefined,
        setHeaders: {},
        dropHeaders: [],
        route: (msg) => redriver.decide(msg),
        targetName: "the queues they died in",
        returnsFresh: sendBack,
      }, io);
    } finally {
      await report(o, io, redriver, "redriven", sendBack);
    }
  } finally {
    await closeQuietly(checker);
  }
}

/**
 * Whether the DLQ is a quorum queue that counts a return as a delivery (RabbitMQ before 4.3):
 * then what stays is sent to its tail as new messages rather than returned at the end.
 */
async function returnsCount(client: AMQPClient, o: RedriveOptions, io: RedriveIo): Promise<boolean> {
  const facts = await queueFacts(client, o.from, o.broker).catch(() => undefined); // a missing DLQ: said later
  if (facts?.type !== "quorum" || !facts.requeueCounts) return false;
  io.log.info(
    `queue '${o.from}' is a quorum queue that counts every return toward a delivery limit: the dead letters ` +
      "that stay go to its tail as new messages (their count starts again at 0), not back",
  );
  return true;
}

async function queueExists(client: AMQPClient, queue: string): Promise<boolean> {
  const ch = await client.channel();
  try {
    await ch.queueDeclare(queue, { passive: true });
    return true;
  } catch {
    return false;
  } finally {
    await ch.close().catch(() => {});
  }
}

/**
 * Every message taken unacknowledged with basic.get and decided on, then the channel closed: the
 * broker puts all of them back (on a classic queue where they were). Nothing is published.
 */
async function dryRun(
  o: RedriveOptions,
  io: RedriveIo,
  client: AMQPClient,
  redriver: Redriver,
): Promise<void> {
  await guardRequeues(client, o.from, o.broker, "--dry-run", o.acceptDeliveryCount, io.log);
  const ch = await client.channel();
  try {
    await ch.queueDeclare(o.from, { passive: true });
  } catch (err) {
    throw new KmqError(ExitCode.brokerRefused, `queue '${o.from}' does not exist: nothing to redrive`, {
      cause: classifyError(err, "checking the dead-letter queue"),
    });
  }
  let seen = 0;
  while (o.count === undefined || seen < o.count) {
    if (io.stop.aborted) break;
    const msg = await ch.basicGet(o.from, { noAck: false });
    if (!msg) break;
    seen++;
    const way = await redriver.decide(msg);
    if (way.send) way.confirmed?.(); // counted as if it went: nothing is published
  }
  await ch.close().catch(() => {});
  await report(o, io, redriver, "would be redriven");
}

/** What went (or would go) back, by origin and reason, and what stays, by why: stdout. */
async function report(
  o: RedriveOptions,
  io: RedriveIo,
  r: Redriver,
  verb: string,
  sentBack = false,
): Promise<void> {
  const sent = [...r.sent.values()].reduce((n, g) => n + g.count, 0);
  const left = [...r.left.values()].reduce((n, c) => n + c, 0);
  let text: string;
  if (o.format === "json") {
    const json = {
      queue: o.from,
      dry_run: o.dryRun,
      redriven: groupJson(r.sent),
      left: [...r.left].map(([why, count]) => ({ why, count })),
      left_sent_to_tail: sentBack,
    };
    text = escapeJsonControls(JSON.stringify(json, null, 2)) + "\n";
  } else {
    const lines = [
      `${sent} message(s) ${verb} from queue '${o.from}'${sent ? ":" : ""}`,
      ...groupLines(r.sent),
    ];
    if (left > 0) {
      const where = sentBack
        ? " (at its tail, as new messages: a return would count toward its delivery limit)"
        : "";
      lines.push(`${left} stay in '${o.from}'${where}:`, ...[...r.left].map(([why, n]) => `  ${n}: ${why}`));
    }
    text = lines.map(showControls).join("\n") + "\n";
  }
  await write(io.stdout, new TextEncoder().encode(text)).catch(() => {});
}

export function defineRedrive(program: Command, done: Done): void {
  retryAndStopOptions(
    program.command("redrive")
      .description("send dead letters back to the queues they died in, acking each once confirmed")
      .requiredOption("--from <queue>", "the dead-letter queue", shortString("--from"))
      .option("--dry-run", "change nothing: report what would go where, by origin queue and reason", false)
      .option(
        "--reason <reason>",
        "only deaths for this reason: rejected, expired, maxlen, delivery_limit (repeatable)",
        collect,
      )
      .option("--origin <queue>", "only dead letters from this queue (repeatable)", collect)
      .option("--filter <expr>", "only those this CEL condition is true for (death.queue, death.reason, …)")
      .option(
        "--via-exchange",
        "publish to the exchange and first routing key each was published with (copies to every queue bound)",
        false,
      )
      .option(
        "--max-redrives <n>",
        "leave messages kmq redrove this many times",
        integer("--max-redrives", 1, 1_000_000),
        3,
      )
      .option("-n, --count <n>", "redrive at most n messages", integer("--count", 1, Number.MAX_SAFE_INTEGER))
      .option("--rate <msgs/s>", "at most this many messages per second", positive("--rate"))
      .option(
        "--accept-delivery-count",
        "--dry-run on a quorum DLQ with a delivery limit: look anyway, each return counting one delivery",
      )
      .addOption(
        new Option("-o, --format <format>", "the report: text or json").choices(["text", "json"] as const)
          .default("text" as const),
      ),
    "after Ctrl-C, wait this long for confirms (then exit 7)",
  )
    .addHelpText(
      "after",
      `
Each dead letter goes back through the default exchange to the queue its latest x-death names, so no
other queue bound to its exchange gets a copy. Left in the DLQ, and reported: messages with no x-death,
whose queue no longer exists, redriven --max-redrives times already, or dead again during this run.

Examples:
  kmq redrive --from orders.dlq --dry-run
  kmq redrive --from orders.dlq --reason rejected --origin orders
  kmq redrive --from dlq --filter 'death.reason == "expired" && json.amount > 100' --rate 200`,
    )
    .action((o, cmd) => {
      const options = redriveOptionsFrom(o, globalsOf(cmd));
      done({
        kind: "run",
        verbose: options.verbose,
        run: async (io) =>
          cmdRedrive(options, {
            stdout: io.stdout(),
            log: io.log,
            stop: io.stop(),
            stderr: await io.stderr(),
          }),
      });
    });
}

const REASONS = ["rejected", "expired", "maxlen", "delivery_limit"];

/** What redrive parsed, checked (exit 2 naming the problem) and mapped to its options. */
function redriveOptionsFrom(
  o: {
    from: string;
    dryRun: boolean;
    reason?: string[];
    origin?: string[];
    filter?: string;
    viaExchange: boolean;
    maxRedrives: number;
    count?: number;
    rate?: number;
    acceptDeliveryCount?: true;
    format: "text" | "json";
    retryTimeout: number;
    stopTimeout: number;
  },
  g: GlobalOptions,
): RedriveOptions {
  const bad = (o.reason ?? []).find((r) => !REASONS.includes(r));
  if (bad !== undefined) throw new UsageError(`--reason '${bad}' is not one: use ${REASONS.join(", ")}`);
  return {
    ...g,
    from: o.from,
    selection: {
      reasons: o.reason,
      origins: o.origin,
      maxRedrives: o.maxRedrives,
      viaExchange: o.viaExchange,
    },
    filter: o.filter,
    count: o.count,
    rate: o.rate,
    dryRun: o.dryRun,
    format: o.format,
    retryTimeout: o.retryTimeout,
    stopTimeout: o.stopTimeout,
    acceptDeliveryCount: o.acceptDeliveryCount === true,
  };
}
