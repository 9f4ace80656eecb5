/**
 * `kmq export FILE`: a vhost's definitions and its queues' messages, in order and byte-exact, into
 * one checksummed file that `kmq import` puts back (docs/export-format.md).
 */
import type { Command } from "@commander-js/extra-typings";
import { type ExportOptions, runExport } from "../transfer/run-export.ts";
import { UsageError } from "../term/errors.ts";
import { type Done, globalsOf, shortString } from "./options.ts";

function regexOf(source: string): RegExp {
  try {
    return new RegExp(source);
  } catch (err) {
    throw new UsageError(`--queue-regex '${source}' is not a regular expression: ${(err as Error).message}`);
  }
}

export function defineExport(program: Command, done: Done): void {
  program.command("export")
    .description("write a vhost's definitions and messages to a file (the queues keep their messages)")
    .argument("<file>", "the export file to write (refused if it exists, unless --force)")
    .option(
      "-q, --queue <name>",
      "export this queue only (repeatable); default: every queue of the vhost",
      (v: string, prev: string[] | undefined) => [...(prev ?? []), shortString("--queue")(v)],
    )
    .option(
      "--queue-regex <regex>",
      "export the queues whose names match this regular expression too (needs the management API)",
      regexOf,
    )
    .option("--no-messages", "definitions only: no messages")
    .option("--definitions-only", "the same as --no-messages")
    .option(
      "--drain",
      "take the messages off the queues: each is acked once written and synced to the file (a move to a file)",
    )
    .option("--force", "replace FILE if it exists")
    .option(
      "--api-url <url>",
      "the management API (default: the broker URL's host on 15672, or 15671 for amqps)",
    )
    .addHelpText(
      "after",
      `
The definitions (exchanges, queues with their types and arguments, bindings including exchange-to-exchange
ones, policies) come from the management API; without it, only the queues named with --queue are exported,
their types and arguments learned over AMQP. Each queue's messages follow in order, with every property
and typed header, bodies byte-exact.

Nothing is taken away unless --drain: a classic queue's messages are held unacknowledged while they are
written and all go back in order (other consumers do not see them meanwhile: the summary says how long);
a quorum queue is sent round once — each message published again to its tail and the original acked once
that is confirmed — so its order is kept and no delivery counts toward a delivery limit (a quorum queue
with consumers is refused); a stream is read from its first offset to its last one at the start.

The file is written as FILE.partial and renamed when complete, so FILE is never half an export.
Exit 0: every chosen queue exported; 2: FILE exists, bad options; 4: broker or API unreachable;
6: a queue is missing or busy; 130/143: stopped (nothing taken; FILE not written).

Examples:
  kmq export prod.kmq                        # the whole vhost of -u
  kmq export -u amqp://guest:guest@old/orders orders.kmq
  kmq export --queue orders --queue orders.dlq two-queues.kmq
  kmq export --queue-regex '^orders\.' orders.kmq       # every queue named orders.…
  kmq export --no-messages topology.kmq
  kmq export --drain --queue archive archive.kmq    # empties 'archive' into the file`,
    )
    .action((file, o, cmd) => {
      const g = globalsOf(cmd);
      const options: ExportOptions = {
        broker: o.apiUrl === undefined ? g.broker : { ...g.broker, apiUrl: o.apiUrl },
        file,
        queues: o.queue ?? [],
        match: o.queueRegex,
        messages: o.messages !== false && o.definitionsOnly !== true,
        drain: o.drain === true,
        force: o.force === true,
      };
      done({
        kind: "run",
        verbose: g.verbose,
        run: async (io) => runExport(options, { log: io.log, stop: io.stop(), stderr: await io.stderr() }),
      });
    });
}
