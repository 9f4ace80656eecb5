/**
 * The command line: the program, its global options, and the list of commands, each defined in
 * a module of its own under lib/commands/ (its options, help, examples and checks beside the
 * function that runs it). Only the invoked command's module is loaded to parse and run it; help
 * without a command, a mistyped command and completion scripts load them all.
 */
import { Command, CommanderError, type CommandUnknownOpts, Help, Option } from "@commander-js/extra-typings";
import process from "node:process";
import { DEFAULT_URL, hasScheme, schemeMissing } from "../amqp/connection.ts";
import { UsageError } from "../term/errors.ts";
import { VERSION } from "../term/version.ts";
import { type Define, type Invocation, useContextSettings } from "./options.ts";

export type { CommandIo, Invocation } from "./options.ts";

/** Help without commander's "(default: false)" and "(default: {})": an off switch needs no default. */
const HELP = {
  optionDescription(option: Option): string {
    const text = new Help().optionDescription(option);
    return text.replace(/ \(default: (false|\{\})\)$/, "").replace(/, default: (false|\{\})\)$/, ")");
  },
};

/** The width commander wraps help to: the terminal's, or 80 when stdout is not one. */
function helpWidth(): number {
  return process.stdout.isTTY && process.stdout.columns ? process.stdout.columns : 80;
}

/**
 * Re-wraps the paragraphs of a help footer to `width`; indented lines (examples) stay as written,
 * since a command line cut in two could not be pasted.
 */
export function wrapProse(text: string, width: number): string {
  // the blank lines between paragraphs are kept as they are (captured, so they stay in the list)
  return text.split(/(\n{2,})/).map((piece) => {
    if (/^\n*$/.test(piece)) return piece;
    const lead = /^\n*/.exec(piece)![0];
    const block = piece.slice(lead.length);
    if (block.split("\n").some((l) => l.startsWith(" "))) return piece;
    const lines: string[] = [];
    let line = "";
    for (const word of block.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    if (line) lines.push(line);
    return lead + lines.join("\n") + (block.endsWith("\n") ? "\n" : "");
  }).join("");
}

/** Help with its prose wrapped to the width; errors are kmq's to print (one line, masked). */
const OUTPUT = {
  writeOut: (text: string) => void process.stdout.write(wrapProse(text, helpWidth())),
  writeErr: (text: string) => void process.stderr.write(wrapProse(text, helpWidth())),
  outputError: () => {},
};

const EXAMPLES = `
Examples:
  kmq consume                              # the tutorial's consumer.py: prints each message
  kmq produce "Hello World!"               # the tutorial's producer.py
  kmq produce --json '{"task": "add"}'     # Kombu's JSON serializer
  seq 1 1000 | kmq produce --lines         # one message per line, every one confirmed
  kmq consume -o json -n 10 > dump.jsonl   # dump ten messages with all their properties
  kmq consume -q '' -e amq.topic -r '#'    # tap an exchange with a throw-away queue
  kmq declare -e jobs -q jobs -r jobs      # create topology from a setup script
  kmq consume -c 4 -- ./handle.sh          # a command per message: exit 0 acks, 75 requeues
  kmq call -e "" -r rpc "question"         # RPC: send a request, print the reply

Environment: KMQ_URL (the broker URL), KMQ_PASSWORD (wins over the URL's password), KMQ_PASSWORD_FILE,
KMQ_CACERT, KMQ_CERT, KMQ_KEY (as the options of the same name), KMQ_API_URL (the management API, as
--api-url), KMQ_CONTEXT (as --context), KMQ_CONFIG (the config file of named contexts: kmq config --help).

Exit codes: 0 ok, 1 unexpected, 2 usage, 3 bad input, 4 broker unreachable, 5 access refused, 6 broker
refused an operation, 7 message not delivered, 8 messages a command failed on, 9 consumer cancelled by the
broker, 130/143 stopped by SIGINT/SIGTERM, 141 the reader of stdout went away.

Reference: reference.md beside kmq in its release archive, docs/reference.md in the source, or
https://github.com/kmq-cli/kmq/blob/main/docs/reference.md`;

/** The version; with -v also the runtime that runs kmq and the platform it was built for. */
function versionText(argv: string[]): string {
  if (!argv.includes("-v") && !argv.includes("--verbose")) return VERSION;
  const versions = process.versions as Record<string, string | undefined>;
  const runtime = versions.bun
    ? `bun ${versions.bun}`
    : versions.deno
    ? `deno ${versions.deno}`
    : `node ${versions.node}`;
  return `kmq ${VERSION} (${runtime}, ${process.platform}-${process.arch})`;
}

/** Every command: kmq's help option and wording, errors thrown rather than printed and exited. */
function configure(commands: readonly CommandUnknownOpts[]): void {
  for (const cmd of commands) {
    cmd.helpOption("-h, --help", "show help").exitOverride().configureOutput(OUTPUT).configureHelp(HELP);
    configure(cmd.commands);
  }
}

/** Each command and where its definition is, in the order help lists them. */
const COMMANDS: [string, () => Promise<Define>][] = [
  ["produce", async () => (await import("./produce.ts")).defineProduce],
  ["call", async () => (await import("./call.ts")).defineCall],
  ["consume", async () => (await import("./consume.ts")).defineConsume],
  ["declare", async () => (await import("./declare.ts")).defineDeclare],
  ["celery", async () => (await import("./celery.ts")).defineCelery],
  ["info", async () => (await import("./info.ts")).defineInfo],
  ["purge", async () => (await import("./purge.ts")).definePurge],
  ["delete", async () => (await import("./delete.ts")).defineDelete],
  ["unbind", async () => (await import("./unbind.ts")).defineUnbind],
  ["peek", async () => (await import("./peek.ts")).definePeek],
  ["move", async () => (await import("./move.ts")).defineMove],
  ["route", async () => (await import("./route.ts")).defineRoute],
  ["redrive", async () => (await import("./redrive.ts")).defineRedrive],
  ["export", async () => (await import("./export.ts")).defineExport],
  ["import", async () => (await import("./import.ts")).defineImport],
  ["bench", async () => (await import("./bench.ts")).defineBench],
  ["config", async () => (await import("./config.ts")).defineConfig],
  ["completion", async () => (await import("./completion.ts")).defineCompletion],
  ["man", async () => (await import("./man.ts")).defineMan],
];

/** Commands that need the whole tree defined (they print it). */
const WHOLE_TREE = ["completion", "man"];

/** Global options that take a value: the word after them is not the command. */
/**
 * A second `-u` is joined to the first with a comma, where only a scheme starts a new address: one
 * without a scheme would become part of the first one's vhost: exit 2 instead.
 */
function schemed(value: string): string {
  if (hasScheme(value)) return value;
  throw schemeMissing("a -u value", value);
}

const VALUED_GLOBALS = new Set([
  "-u",
  "--url",
  "--cacert",
  "--cert",
  "--key",
  "--password-file",
  "--context",
]);

/** Where the command word of argv is: the first word that is neither a global option nor its value. */
function commandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return -1;
    if (!a.startsWith("-")) return i;
    if (VALUED_GLOBALS.has(a)) i++;
  }
  return -1;
}

/** The command word of argv, if any. */
function commandWord(argv: string[]): string | undefined {
  return argv[commandIndex(argv)];
}

/**
 * `kmq help [COMMAND [SUBCOMMAND]]` is `kmq [COMMAND [SUBCOMMAND]] --help`: help on stdout, exit 0.
 * A COMMAND that is none is exit 2 naming the commands (not "no command given").
 */
function helpAsOption(argv: string[]): string[] {
  const at = commandIndex(argv); // the word "help" (a -u value may be spelt so too)
  const topic = argv.slice(at + 1).find((a) => !a.startsWith("-"));
  if (topic !== undefined && !COMMANDS.some(([name]) => name === topic)) {
    throw new UsageError(
      `'${topic}' is not a kmq command: the commands are ${COMMANDS.map(([name]) => name).join(", ")}`,
    );
  }
  return [...argv.slice(0, at), ...argv.slice(at + 1), "--help"];
}

/** The program and its global options, with no command yet. */
function baseProgram(argv: string[]) {
  return new Command()
    .name("kmq")
    .description(
      "Produce and consume AMQP 0-9-1 messages (RabbitMQ, LavinMQ, …), speaking Kombu's wire format.",
    )
    .version(versionText(argv), "-V, --version", "print kmq's version (with -v: runtime and build target)")
    .helpOption("-h, --help", "show help")
    .addOption(
      new Option(
        "-u, --url <url>",
        `broker URL (amqp:// or amqps://; default ${DEFAULT_URL.replace(/:[^:@/]*@/, ":***@")}); ` +
          "several (repeat -u, or a comma-separated list) are tried in turn and failed over",
      ).env("KMQ_URL").argParser((value: string, previous: string | undefined) =>
        previous === undefined ? value : `${previous},${schemed(value)}`
      ),
    )
    .addOption(new Option("--cacert <file>", "trust the CA(s) in this PEM file (amqps://)").env("KMQ_CACERT"))
    .addOption(new Option("--cert <file>", "client certificate, PEM (amqps://; with --key)").env("KMQ_CERT"))
    .addOption(new Option("--key <file>", "private key of --cert, PEM").env("KMQ_KEY"))
    .addOption(
      new Option("--password-file <file>", "read the password from this file (first line)").env(
        "KMQ_PASSWORD_FILE",
      ),
    )
    .addOption(
      new Option("--context <name>", "use this context of the config file (kmq config list)").env(
        "KMQ_CONTEXT",
      ),
    )
    .option("-v, --verbose", "log connection and declaration steps to stderr", false)
    .addHelpText("after", EXAMPLES)
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput(OUTPUT)
    .configureHelp(HELP);
}

/**
 * The context named by --context or KMQ_CONTEXT, or the config file's default, for globalsOf;
 * the file is read only when it exists or a context is asked for.
 */
async function loadContext(argv: string[]): Promise<void> {
  const before = argv.slice(0, commandIndex(argv));
  const at = before.findIndex((a) => a === "--context" || a.startsWith("--context="));
  const named = at < 0
    ? process.env.KMQ_CONTEXT || undefined
    : before[at]!.includes("=")
    ? before[at]!.slice("--context=".length)
    : before[at + 1];
  const path = (await import("../config/config-path.ts")).configPath();
  if (named === undefined && !(await import("node:fs")).existsSync(path)) return;
  useContextSettings((await import("../config/contexts.ts")).chooseContext(path, named));
}

/** Parses argv (without the runtime and script) into an invocation, or throws a UsageError. */
export async function parseCommandLine(argv: string[]): Promise<Invocation> {
  let invocation: Invocation = { kind: "done" };
  const program = baseProgram(argv);
  // only the invoked command is defined (its module and commander's option objects cost start-up
  // time); help without a command, a mistyped command and completion scripts need them all
  if (commandWord(argv) === "help") argv = helpAsOption(argv);
  const word = commandWord(argv);
  const known = COMMANDS.some(([name]) => name === word);
  // help needs no broker: a broken config file must not stand between a user and --help
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  if (known && !wantsHelp && !["config", ...WHOLE_TREE].includes(word!)) await loadContext(argv);
  const only = known && !WHOLE_TREE.includes(word!) ? word : undefined;
  const defines = await Promise.all(
    COMMANDS.filter(([name]) => only === undefined || name === only).map(([, load]) => load()),
  );
  for (const define of defines) define(program as unknown as Command, (i) => (invocation = i), argv);
  configure(program.commands);

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") {
      return { kind: "done" };
    }
    if (err.code === "commander.help" && known) {
      // commander has printed the command's help to stderr: it needs a subcommand
      const subcommands = program.commands.find((c) => c.name() === word)?.commands.map((c) => c.name())
        .filter((n) => n !== "help") ?? [];
      throw new UsageError(`'kmq ${word}' needs one of: ${subcommands.join(", ")}`);
    }
    if (err.code === "commander.help") {
      // commander has printed the help to stderr: kmq was run without a command
      throw new UsageError(
        `no command given: use ${COMMANDS.map(([name]) => name).join(", ")}; run 'kmq --help' for usage`,
      );
    }
    const where = known ? `kmq ${word}` : "kmq";
    if (word === "delete" && err.code === "commander.unknownCommand") {
      const name = /'([^']*)'/.exec(err.message)?.[1] ?? "NAME";
      throw new UsageError(
        `'kmq delete' deletes a queue or an exchange: say which, 'kmq delete queue ${name}' or ` +
          `'kmq delete exchange ${name}'`,
      );
    }
    const message = err.message.replace(/^error: /, "").replace(/\n+/g, " ").trim().replace(/\.$/, "");
    throw new UsageError(`${message}; run '${where} --help' for usage`);
  }
  return invocation;
}
