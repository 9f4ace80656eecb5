/** `--template FMT`, shared by consume and peek: its option, its help, and its checks. */
import type { Command, OptionValues } from "@commander-js/extra-typings";
import { Template, TEMPLATE_TOKENS } from "../messages/template.ts";
import { UsageError } from "../term/errors.ts";

/** The tokens as help lists them. */
export const TEMPLATE_HELP = `
--template tokens: ${TEMPLATE_TOKENS.map(([t, what]) => `${t} ${what}`).join("; ")}.`;

// deno-lint-ignore no-explicit-any
export function templateOption<A extends any[], O extends OptionValues, G extends OptionValues>(
  cmd: Command<A, O, G>,
) {
  return cmd.option(
    "--template <format>",
    "print each message as the format says, e.g. '%k %h{tenant} %b\\n' (tokens below)",
  );
}

/** The compiled template; exit 2 for an unknown token or with -o given too. */
export function templateFrom(
  format: string | undefined,
  cmd: { getOptionValueSource(key: string): string | undefined },
): Template | undefined {
  if (format === undefined) return undefined;
  if (cmd.getOptionValueSource("format") === "cli") {
    throw new UsageError("--template and -o both say how to print a message: give one of them");
  }
  return new Template(format);
}
