/**
 * `kmq completion`: the scripts complete what the parser knows. bash's is run for real (its
 * completion function called with COMP_WORDS set as bash sets them), fish's through
 * `complete -C`; zsh's is sourced in zsh (it reuses bash's function through bashcompinit).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { run } from "./helpers.ts";

const decoder = new TextDecoder();

async function shell(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function script(name: string): Promise<string> {
  const r = await run(["completion", name]);
  assertEquals(r.code, 0, r.stderr);
  const file = await Deno.makeTempFile({ prefix: `kmq-completion-${name}-` });
  await Deno.writeTextFile(file, r.stdout);
  return file;
}

/** What bash offers for a command line whose last word is being completed. */
async function bashComplete(file: string, line: string): Promise<string[]> {
  const words = line.split(" ");
  const r = await shell("bash", [
    "-c",
    `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kmq; printf '%s\\n' "\${COMPREPLY[@]}"`,
    "bash",
    file,
    ...words,
  ]);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean).sort();
}

Deno.test("completion: bash completes subcommands, options and option values", async () => {
  const file = await script("bash");
  try {
    const cases: [string, string[]][] = [
      ["kmq pro", ["produce"]],
      ["kmq c", ["call", "celery", "completion", "config", "consume"]],
      ["kmq produce --li", ["--lines"]],
      ["kmq produce -e jobs -t ", ["direct", "fanout", "headers", "topic"]],
      ["kmq consume -o j", ["json"]],
      ["kmq -u amqp://h consume --deco", ["--decode"]],
      ["kmq produce --compress b", ["brotli", "bzip2"]],
      ["kmq celery s", ["send"]],
      ["kmq celery send --cou", ["--countdown"]],
      ["kmq --verb", ["--verbose"]],
      ["kmq completion ", ["bash", "fish", "zsh"]],
      ["kmq config ", ["list", "show", "use"]],
      ["kmq consume --exit", ["--exit-at-end"]],
      ["kmq bench --queue-type ", ["classic", "quorum", "stream"]],
      // after --, the words are the command's: nothing of kmq's
      ["kmq consume -- --li", []],
    ];
    for (const [line, want] of cases) assertEquals([line, await bashComplete(file, line)], [line, want]);
    // a file-valued option completes file names
    const files = await bashComplete(file, "kmq --cacert tests/certif");
    assertEquals(files, ["tests/certificates.ts"]);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("completion: fish completes through complete -C", async () => {
  const file = await script("fish");
  try {
    const ask = async (line: string) => {
      const r = await shell("fish", ["-c", `source ${file}; complete -C '${line}'`]);
      assertEquals(r.code, 0, r.stderr);
      return r.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]).sort();
    };
    assertEquals(await ask("kmq pro"), ["produce"]);
    assertEquals(await ask("kmq consume --deco"), ["--decode"]);
    assertEquals(await ask("kmq consume -o "), ["json", "line", "raw"]);
    assertEquals(await ask("kmq celery "), ["send"]);
    assert((await ask("kmq produce --")).includes("--verbose"), "global options everywhere");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("completion: zsh sources its script, registers kmq and offers the candidates", async () => {
  const file = await script("zsh");
  try {
    const r = await shell("zsh", ["-c", `source ${file} && print -r -- $_comps[kmq]`]);
    assertEquals([r.code, r.stdout.trim()], [0, "_bash_complete -o default -F _kmq"], r.stderr);
    // as zsh's _bash_complete calls it; zsh itself then keeps the candidates matching the word
    const offer = async (...words: string[]) => {
      const call = `emulate -L sh; setopt kshglob noshglob braceexpand; COMP_WORDS=(${words.join(" ")}); ` +
        `COMP_CWORD=${words.length - 1}; _kmq; print -r -- "\${COMPREPLY[@]}"`;
      const o = await shell("zsh", ["-c", `source ${file}; f() { ${call}; }; f`]);
      assertEquals(o.code, 0, o.stderr);
      return o.stdout.trim();
    };
    assertEquals(await offer("kmq", "consume", "-o", "j"), "line raw json");
    assertEquals(await offer("kmq", "celery", "s"), "send");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("completion: an unknown shell is a usage error listing the shells", async () => {
  const r = await run(["completion", "powershell"]);
  assertEquals([r.code, r.stdout], [2, ""]);
  assertMatch(r.stderr, /^kmq: .*'powershell' is invalid.*bash, zsh, fish.*\n$/);
});
