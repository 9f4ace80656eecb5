/**
 * `kmq import FILE`: the definitions and messages of a `kmq export` into the broker and vhost of
 * -u, in order with confirms; killed at any point, the same command carries on where the
 * confirmed messages end.
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { type ImportOptions, runImport } from "../transfer/run-import.ts";
import { UsageError } from "../term/errors.ts";
import { type Done, globalsOf, seconds, shortString } from "./options.ts";

/** OLD=NEW for --rename; both names checked as AMQP names. */
function renameOf(spec: string, previous: Map<string, string> | undefined): Map<string, string> {
  const eq = spec.indexOf("=");
  if (eq <= 0 || eq === spec.length - 1) {
    throw new UsageError(`--rename '${spec}' is not OLD=NEW (a queue or exchange name, then its new name)`);
  }
  const [from, to] = [spec.slice(0, eq), spec.slice(eq + 1)];
  shortString("--rename")(from);
  shortString("--rename")(to);
  const map = previous ?? new Map<string, string>();
  if (map.has(from)) throw new UsageError(`--rename '${from}' is given twice`);
  return map.set(from, to);
}

const HELP = `
The whole file is checked first — every part's line count, bytes and SHA-256 — and nothing is declared or
published from a file that fails (exit 3 naming the part). Then the exchanges, queues and bindings are
declared over AMQP (what exists as defined is used; what exists otherwise is exit 6 naming it), policies
set through the management API, and each queue's messages published to it in order with confirms.

The progress file records what the target confirmed. Stopped or killed at any point, the same command
carries on from there: at most 2,000 messages per queue are sent past the last record, and those already
in a queue that nobody reads from are found and not sent again; the summary says how many could be
duplicates. A finished import is recorded too: running it again does nothing (remove the progress file
to import once more). A queue that already holds messages is refused (exit 2) unless --append.

--queue-type quorum turns classic queues into quorum queues: x-max-priority, x-queue-mode,
x-queue-master-locator and x-queue-version are dropped (said on stderr); an auto-delete, transient or
reject-publish-dlx queue is exit 2 naming it (leave it out with --queue for the others).

Exit 0: imported; 2: bad options, a non-empty queue, another import's progress file; 3: the file is
damaged or not an export; 4: broker or API unreachable; 6: a conflict on the target; 7: the target refused
messages (nacked or unroutable: the progress file stops before the first); 130/143: stopped (resumable).

Examples:
  kmq import -u amqp://guest:guest@new-cluster/ prod.kmq
  kmq import --queue-type quorum prod.kmq          # classic → quorum on the way in
  kmq import --rename orders=orders.v2 --queue orders prod.kmq
  kmq import --no-messages topology.kmq
  kmq import --check backup.kmq                     # is the backup whole? what does it hold?`;

export function defineImport(program: Command, done: Done): void {
  program.command("import")
    .description("declare and publish what 'kmq export' wrote (resumable: run it again after a stop)")
    .argument("<file>", "a file written by kmq export")
    .option(
      "-q, --queue <name>",
      "import this queue only, by its name in the file (repeatable); default: all",
      (v: string, prev: string[] | undefined) => [...(prev ?? []), shortString("--queue")(v)],
    )
    .option(
      "--rename <old=new>",
      "give a queue or exchange another name on the target (repeatable)",
      renameOf,
    )
    .addOption(
      new Option("--queue-type <type>", "turn the classic queues into this type on the way in").choices(
        ["quorum"] as const,
      ),
    )
    .option("--no-messages", "declare the definitions only")
    .option("--no-policies", "leave the policies out (they need the target's management API)")
    .option("--append", "add to queues that already hold messages")
    .option(
      "--check",
      "check the file (counts, checksums) and list what it holds; nothing is declared or published",
    )
    .option("--progress <file>", "where the import keeps its progress (default: FILE.import-progress)")
    .option(
      "--api-url <url>",
      "the target's management API, for policies (default: the broker URL's host on 15672)",
    )
    .option(
      "--stop-timeout <seconds>",
      "after Ctrl-C or SIGTERM, wait this long for the confirms of what was sent",
      seconds("--stop-timeout"),
      5,
    )
    .addHelpText("after", HELP)
    .action((file, o, cmd) => {
      const g = globalsOf(cmd);
      const options: ImportOptions = {
        broker: o.apiUrl === undefined ? g.broker : { ...g.broker, apiUrl: o.apiUrl },
        file,
        progress: o.progress,
        transform: { renames: o.rename ?? new Map(), queueType: o.queueType, only: o.queue ?? [] },
        policies: o.policies !== false,
        messages: o.messages !== false,
        append: o.append === true,
        checkOnly: o.check === true,
        stopTimeout: o.stopTimeout,
      };
      done({
        kind: "run",
        verbose: g.verbose,
        run: async (io) =>
          runImport(options, {
            log: io.log,
            stop: io.stop(),
            stderr: await io.stderr(),
            stdout: io.stdout(),
          }),
      });
    });
}
