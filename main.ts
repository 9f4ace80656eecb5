/**
 * kmq's entry point: parse, dispatch, and the one place that exits. Every failure becomes one
 * line on stderr and a documented exit code; a stack trace only with --verbose.
 */
import process from "node:process";
import { ExitCode, forStderr, KmqError, redactUrl } from "./lib/term/errors.ts";
import { VERSION } from "./lib/term/version.ts";

// Each command's modules load when it runs (and commander only when there is a command line to
// parse): a shell loop pays for what it uses, and `kmq --version` for nearly nothing.
/** Kills running handlers' process groups; set once consume has loaded them. */
let killRunningHandlers = () => {};

/**
 * Bun sets process.stdout and process.stderr up on first use, which costs more than the rest of
 * a `kmq produce` start: only commands that write data touch stdout, and stderr is only asked
 * whether it is a terminal (of its file descriptor) until something is written to it.
 */
let stdoutUsed = false;

function stdout(): typeof process.stdout {
  if (!stdoutUsed) {
    stdoutUsed = true;
    // write errors reach each writer through its callback; unheard, the stream's 'error' event
    // would crash the process (Bun) before kmq can report it
    process.stdout.on("error", () => {});
  }
  return process.stdout;
}

/** stderr for progress lines; node:fs (to ask the descriptor) loads only for the commands that draw them. */
async function lazyStderr() {
  const { isTerminal } = await import("./lib/term/terminal.ts");
  return {
    get isTTY(): boolean {
      return isTerminal(2);
    },
    get columns(): number | undefined {
      return process.stderr.columns;
    },
    write: (text: string) => process.stderr.write(text),
  };
}

async function run(argv: string[]): Promise<number> {
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    console.log(VERSION); // process.stdout would cost more than all the rest of --version
    return ExitCode.ok;
  }
  const [{ checkArgumentsUtf8 }, { parseCommandLine }, { stderrLog }] = await Promise.all([
    import("./lib/term/argv.ts"),
    import("./lib/commands/registry.ts"),
    import("./lib/term/log.ts"),
  ]);
  checkArgumentsUtf8(argv);
  const invocation = await parseCommandLine(argv);
  if (invocation.kind === "done") return ExitCode.ok;
  if (invocation.kind === "print") {
    stdout().write(invocation.text);
    return ExitCode.ok;
  }
  let stop: AbortSignal | undefined;
  await invocation.run({
    // opening process.stdin costs start-up time: only a command that reads it opens it
    stdin: () => process.stdin,
    stdout,
    stderr: lazyStderr,
    log: stderrLog(invocation.verbose),
    stop: () => (stop ??= stopOnSignals()),
    interactive: () => process.stderr.isTTY === true,
    onForcedExit: (kill) => (killRunningHandlers = kill),
  });
  return ExitCode.ok;
}

/**
 * SIGINT and SIGTERM ask the command to stop cleanly (the signal's name is the abort reason); a
 * second one, while it is still finishing, exits at once.
 */
function stopOnSignals(): AbortSignal {
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stop.signal.aborted) return stop.abort(signal);
    process.stderr.write(
      `kmq: ${signal} again: exiting without waiting (unacked messages go back to the queue; unconfirmed ones may be lost)\n`,
    );
    killRunningHandlers(); // they run in process groups of their own: the signal did not reach them
    process.exit(signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return stop.signal;
}

function report(err: unknown, verbose: boolean): number {
  if (err instanceof KmqError) {
    process.stderr.write(`kmq: ${forStderr(err.message)}\n`);
    if (verbose && err.cause instanceof Error && err.cause.stack) {
      process.stderr.write(redactUrl(err.cause.stack) + "\n");
    }
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`kmq: unexpected error: ${forStderr(message)} (rerun with --verbose for details)\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(redactUrl(err.stack) + "\n");
  return ExitCode.unexpected;
}

/**
 * dist/kmq is built with a high JIT tier-up threshold (--compile-jit-policy in
 * scripts/build-offline.sh): a one-shot command ends before optimized code would pay for its
 * compiling (-5 ms of a 30 ms produce). A command still running after 50 ms moves messages in
 * bulk, so the runtime's normal policy comes back (consume at the high threshold runs ~10%
 * slower). Other runtimes have no such switch: nothing happens there.
 */
function normalJitSoon(): void {
  const bun = (globalThis as { Bun?: { unsafe?: { setJITPolicy?: (scale: number) => void } } }).Bun;
  const setPolicy = bun?.unsafe?.setJITPolicy;
  if (setPolicy) setTimeout(() => setPolicy(1), 50).unref();
}

normalJitSoon();
const argv = process.argv.slice(2);
const verbose = argv.includes("-v") || argv.includes("--verbose");
// the AMQP client rejects promises nobody awaits when a connection dies; they are reported elsewhere
process.on("unhandledRejection", () => {});
// an error thrown where no promise catches it (inside a socket's data handler, say) is still one
// line and exit 1: never the runtime's dump of minified source
process.on("uncaughtException", (err) => {
  killRunningHandlers();
  process.exit(report(err, verbose));
});
let finished = false;
// the event loop ran dry while the command still waited (a promise nothing can settle): that must
// not pass for success, as it would with the runtime's silent exit 0
process.on("beforeExit", () => {
  if (finished) return;
  process.stderr.write("kmq: the command stopped with work unfinished (a kmq bug: please report it)\n");
  process.exit(ExitCode.unexpected);
});
// no top-level await: it keeps the bundle eligible for bun's precompiled bytecode (faster start)
run(argv).catch((err) => report(err, verbose)).then((code) => {
  finished = true;
  process.exitCode = code;
  // let stdout drain before leaving: a pipe may still hold the last messages
  const exit = () => process.exit(code);
  if (!stdoutUsed || process.stdout.errored || process.stdout.destroyed) return exit();
  process.stdout.write("", exit);
});
