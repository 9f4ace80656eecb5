/**
 * Writes every command's --help and the three completion scripts into a folder, so a restructure can
 * show it changed no option: run it before and after, then diff the two folders.
 *
 *   deno run -A scripts/help-snapshot.ts /tmp/help-before   # (change the code)
 *   deno run -A scripts/help-snapshot.ts /tmp/help-after && diff -r /tmp/help-before /tmp/help-after
 */
const COMMANDS = [
  [],
  ["produce"],
  ["call"],
  ["consume"],
  ["declare"],
  ["celery"],
  ["celery", "send"],
  ["info"],
  ["purge"],
  ["delete"],
  ["delete", "queue"],
  ["delete", "exchange"],
  ["unbind"],
  ["peek"],
  ["move"],
  ["route"],
  ["redrive"],
  ["completion"],
];

const dir = Deno.args[0];
if (!dir) {
  console.error("usage: deno run -A scripts/help-snapshot.ts DIR");
  Deno.exit(2);
}
await Deno.mkdir(dir, { recursive: true });
const main = new URL("../main.ts", import.meta.url).pathname;
const kmq = (args: string[]) =>
  new Deno.Command(Deno.execPath(), { args: ["run", "-A", "--quiet", main, ...args], env: { NO_COLOR: "1" } })
    .output();
const text = (out: Deno.CommandOutput) =>
  new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
for (const words of COMMANDS) {
  await Deno.writeTextFile(
    `${dir}/${["kmq", ...words].join("_")}.txt`,
    text(await kmq([...words, "--help"])),
  );
}
for (const shell of ["bash", "zsh", "fish"]) {
  await Deno.writeTextFile(`${dir}/completion-${shell}.txt`, text(await kmq(["completion", shell])));
}
console.log(`wrote ${COMMANDS.length + 3} files to ${dir}`);
