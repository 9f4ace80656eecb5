import { Argument, type Command } from "@commander-js/extra-typings";
import type { Done } from "./options.ts";
/**
 * `kmq completion bash|zsh|fish`: a completion script generated from the command tree in
 * lib/cli.ts, so that every subcommand, option and choice the parser knows completes, and nothing
 * else. The npm completion libraries (tabtab, omelette) read their shell templates from files
 * beside their sources, which a single-file binary does not have, or exit the process
 * themselves; the scripts here are static and need no kmq call at Tab time.
 */

/** What completion needs of a commander Command (commander's own types are generic). */
export interface CommandTree {
  name(): string;
  description(): string;
  readonly commands: readonly CommandTree[];
  readonly options: readonly {
    short?: string;
    long?: string;
    flags: string;
    description: string;
    required: boolean;
    optional: boolean;
    hidden: boolean;
    argChoices?: string[];
  }[];
  readonly registeredArguments: readonly { argChoices?: string[] }[];
}

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = typeof SHELLS[number];

interface Level {
  /** Subcommand words from the top, e.g. ["celery", "send"]; [] for kmq itself. */
  path: string[];
  commands: { name: string; description: string }[];
  options: OptionInfo[];
  /** Choices of the first positional argument (kmq completion's shells). */
  argChoices: string[];
}

interface OptionInfo {
  names: string[];
  short?: string;
  long?: string;
  description: string;
  takesValue: boolean;
  choices: string[];
  file: boolean;
}

function optionsOf(cmd: CommandTree): OptionInfo[] {
  return cmd.options.filter((o) => !o.hidden).map((o) => ({
    names: [o.short, o.long].filter((n): n is string => n !== undefined),
    short: o.short?.slice(1),
    long: o.long?.slice(2),
    description: o.description,
    takesValue: o.required || o.optional,
    choices: o.argChoices ?? [],
    file: /<(file|path)>/.test(o.flags),
  }));
}

/** Every command of the tree with the options it accepts (the top level's count everywhere). */
function levels(program: CommandTree): Level[] {
  const help = { names: ["-h", "--help"], short: "h", long: "help", description: "show help" };
  const globals = [...optionsOf(program), { ...help, takesValue: false, choices: [], file: false }];
  const out: Level[] = [];
  const walk = (cmd: CommandTree, path: string[]) => {
    const own = path.length === 0 ? [] : optionsOf(cmd);
    out.push({
      path,
      commands: cmd.commands.map((c) => ({ name: c.name(), description: c.description() })),
      options: [...own, ...globals],
      argChoices: cmd.registeredArguments[0]?.argChoices ?? [],
    });
    for (const sub of cmd.commands) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  return out;
}

export function completionScript(program: CommandTree, shell: Shell): string {
  const all = levels(program);
  return shell === "fish" ? fish(all) : shell === "zsh" ? zsh(all) : bash(all);
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bash(all: Level[]): string {
  const descend = all.filter((l) => l.path.length > 0).map((l) =>
    `      ${quote(`${l.path.slice(0, -1).join(" ")}:${l.path.at(-1)}`)}) path=${quote(l.path.join(" "))} ;;`
  );
  const takesValue = [
    ...new Set(all.flatMap((l) => l.options.filter((o) => o.takesValue).flatMap((o) => o.names))),
  ];
  const words = all.map((l) =>
    `    ${quote(l.path.join(" "))}) opts=${quote(l.options.flatMap((o) => o.names).join(" "))}; words=${
      quote([...l.commands.map((c) => c.name), ...l.argChoices].join(" "))
    } ;;`
  );
  const globals = all[0]!.options.length;
  // a level's own options, then the top level's, which count at every level
  const values = all.flatMap((l, i) =>
    l.options.slice(0, i === 0 ? undefined : l.options.length - globals).filter((o) =>
      o.choices.length > 0 || o.file
    )
      .map((o) => {
        const pattern = o.names.map((
          n,
        ) => (i === 0 ? `*${quote(`:${n}`)}` : quote(`${l.path.join(" ")}:${n}`))).join("|");
        const reply = o.file ? `compgen -f -- "$cur"` : `compgen -W ${quote(o.choices.join(" "))} -- "$cur"`;
        return `    ${pattern}) COMPREPLY=($(${reply})); return ;;`;
      })
  ).reverse();
  return `# kmq completion for bash: add  source <(kmq completion bash)  to ~/.bashrc
_kmq() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local path="" i skip=0 opts words
  for ((i = 1; i < COMP_CWORD; i++)); do
    if ((skip)); then skip=0; continue; fi
    case "\${COMP_WORDS[i]}" in
      --) return ;;
      ${takesValue.map(quote).join("|")}) skip=1; continue ;;
    esac
    case "$path:\${COMP_WORDS[i]}" in
${descend.join("\n")}
    esac
  done
  case "$path:$prev" in
${values.join("\n")}
  esac
  case "$path" in
${words.join("\n")}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -o default -F _kmq kmq
`;
}

function zsh(all: Level[]): string {
  return `# kmq completion for zsh: add  source <(kmq completion zsh)  to ~/.zshrc
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bash(all).split("\n").slice(1).join("\n")}`;
}

function fish(all: Level[]): string {
  const lines = [
    "# kmq completion for fish: kmq completion fish > ~/.config/fish/completions/kmq.fish",
    "complete -c kmq -f",
  ];
  // fish's test for "this command's words so far are exactly <path>"
  const at = (path: string[]) =>
    path.length === 0
      ? "__fish_use_subcommand"
      : `__fish_seen_subcommand_from ${path.at(-1)}${
        path.length === 1 ? "" : `; and __fish_seen_subcommand_from ${path.slice(0, -1).join(" ")}`
      }`;
  for (const l of all) {
    const leaf = l.commands.length === 0;
    const cond = l.path.length === 0
      ? at([])
      : leaf
      ? at(l.path)
      : `${at(l.path)}; and not __fish_seen_subcommand_from ${l.commands.map((c) => c.name).join(" ")}`;
    for (const c of l.commands) {
      lines.push(`complete -c kmq -n ${quote(cond)} -a ${c.name} -d ${quote(c.description)}`);
    }
    for (const choice of l.argChoices) lines.push(`complete -c kmq -n ${quote(cond)} -a ${choice}`);
    const own = l.path.length === 0
      ? l.options
      : l.options.slice(0, l.options.length - all[0]!.options.length);
    for (const o of own) {
      const flags = [o.short ? `-s ${o.short}` : "", o.long ? `-l ${o.long}` : ""].filter(Boolean).join(" ");
      const value = o.file
        ? "-r -F"
        : o.choices.length > 0
        ? `-x -a ${quote(o.choices.join(" "))}`
        : o.takesValue
        ? "-x"
        : "";
      const where = l.path.length === 0 ? "" : `-n ${quote(`__fish_seen_subcommand_from ${l.path.at(-1)}`)} `;
      lines.push(
        `complete -c kmq ${where}${flags} ${value} -d ${quote(o.description)}`.replace(/ {2,}/g, " "),
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** `kmq completion SHELL`: the script, from the whole command tree (every command is defined first). */
export function defineCompletion(program: Command, done: Done): void {
  program.command("completion")
    .description("print a completion script for bash, zsh or fish")
    .addArgument(new Argument("<shell>", "the shell").choices(SHELLS))
    .addHelpText(
      "after",
      `
Examples:
  source <(kmq completion bash)      # in ~/.bashrc
  source <(kmq completion zsh)       # in ~/.zshrc
  kmq completion fish > ~/.config/fish/completions/kmq.fish`,
    )
    .action((shell) => {
      done({ kind: "print", text: completionScript(program as unknown as CommandTree, shell) });
    });
}
