/**
 * `kmq man`: the manual page kmq(1) in roff, generated from the same command tree as --help and
 * the completion scripts: every command, its arguments, options (with their defaults and
 * choices, as --help words them) and the examples and notes of its help.
 */
import type { Command, Option } from "@commander-js/extra-typings";
import { VERSION } from "../term/version.ts";
import type { Done } from "./options.ts";

/**
 * roff text: backslashes as \e, a leading dot or quote made literal, hyphens as minus signs (as
 * options are typed), anything beyond ASCII as a \[uXXXX] glyph (troff reads bytes, not UTF-8).
 */
function esc(text: string): string {
  return text.replace(/\\/g, "\\e").replace(/-/g, "\\-").replace(/^([.'])/gm, "\\&$1")
    .replace(
      /[\u0080-\u{10ffff}]/gu,
      (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`,
    );
}

/** A help footer as roff: indented lines (examples) kept as they are, prose as paragraphs. */
function footer(text: string): string[] {
  const out: string[] = [];
  for (const block of text.split(/\n{2,}/).map((b) => b.replace(/^\n+|\n+$/g, "")).filter(Boolean)) {
    const lines = block.split("\n");
    const heading = /^[A-Z][^:]*:$/.test(lines[0]!) ? lines.shift()! : undefined;
    if (heading) out.push(".PP", `.B ${esc(heading.slice(0, -1))}`);
    if (lines.length === 0) continue;
    if (lines.some((l) => l.startsWith(" "))) {
      out.push(".PP", ".nf", ".RS 4", ...lines.map(esc), ".RE", ".fi");
    } else out.push(".PP", esc(lines.join(" ")));
  }
  return out;
}

/** What a command's help prints after its options (examples, notes), as its listeners write it. */
function afterHelp(cmd: Command): string {
  let text = "";
  const context = { error: false, command: cmd, write: (s: string) => void (text += s) };
  (cmd as unknown as { emit(event: string, context: unknown): boolean }).emit("afterHelp", context);
  return text;
}

function options(cmd: Command, skipHelp: boolean): string[] {
  const help = cmd.createHelp();
  const out: string[] = [];
  for (const o of cmd.options as readonly Option[]) {
    if (o.hidden || (skipHelp && o.long === "--help")) continue;
    const [flags, value = ""] = [o.flags.replace(/ [<[].*$/, ""), /[<[].*$/.exec(o.flags)?.[0]];
    out.push(
      ".TP",
      `.B ${esc(flags)}${value ? ` \\fI${esc(value)}\\fR` : ""}`,
      esc(help.optionDescription(o)),
    );
  }
  return out;
}

function section(cmd: Command, path: string[]): string[] {
  const usage = `${["kmq", ...path].join(" ")} ${cmd.usage()}`.trim();
  const out = [".SS", `.B ${esc(usage)}`, ".PP", esc(cmd.description())];
  for (const a of cmd.registeredArguments) {
    if (a.description) out.push(".TP", `.I ${esc(a.name())}`, esc(a.description));
  }
  out.push(...options(cmd, true), ...footer(afterHelp(cmd)));
  for (const sub of cmd.commands) out.push(...section(sub as Command, [...path, sub.name()]));
  return out;
}

export function manPage(program: Command): string {
  const commands = program.commands.filter((c) => c.name() !== "help") as Command[];
  const lines = [
    `.TH KMQ 1 "" "kmq ${esc(VERSION)}" "User Commands"`,
    ".SH NAME",
    `kmq \\- ${esc(program.description())}`,
    ".SH SYNOPSIS",
    ".B kmq",
    "[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]",
    ".SH COMMANDS",
    ...commands.flatMap((c) => [".TP", `.B ${esc(c.name())}`, esc(c.description())]),
    ".SH GLOBAL OPTIONS",
    ...options(program, false),
    ...footer(afterHelp(program)),
    ".SH COMMANDS IN DETAIL",
    ...commands.flatMap((c) => section(c, [c.name()])),
    ".SH FILES",
    ".TP",
    ".I ~/.config/kmq/config.toml",
    "named contexts ($XDG_CONFIG_HOME/kmq/config.toml, or KMQ_CONFIG); see \\fBkmq config \\-\\-help\\fR",
    ".SH SEE ALSO",
    "reference.md beside kmq in its release archive (docs/reference.md in the source): every command, the",
    "\\-o json record, the handler contract and the guarantees.",
    "",
  ];
  return lines.join("\n");
}

export function defineMan(program: Command, done: Done): void {
  program.command("man")
    .description("print kmq's manual page (roff), e.g. kmq man | man -l -")
    .addHelpText(
      "after",
      `
Examples:
  kmq man | man -l -
  kmq man > ~/.local/share/man/man1/kmq.1`,
    )
    .action(() => done({ kind: "print", text: manPage(program) }));
}
