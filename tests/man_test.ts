/** `kmq man`: the manual page from the command tree renders cleanly and leaves out no command or option. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { run } from "./helpers.ts";

Deno.test("kmq man: roff that groff reads without a warning, man -l renders, every command and option in it", async () => {
  const r = await run(["man"]);
  assertEquals(r.code, 0, r.stderr);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/kmq.1`, r.stdout);
    const lint = await new Deno.Command("groff", {
      args: ["-man", "-Tutf8", "-ww", "-z", `${dir}/kmq.1`],
      stderr: "piped",
    })
      .output();
    assertEquals([lint.code, new TextDecoder().decode(lint.stderr)], [0, ""]);
    const man = await new Deno.Command("man", {
      args: ["-l", `${dir}/kmq.1`],
      env: { MANPAGER: "cat", MANWIDTH: "100" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const page = new TextDecoder().decode(man.stdout);
    assertEquals(man.code, 0, new TextDecoder().decode(man.stderr));
    // every command kmq --help lists has its section, with its usage line
    const help = (await run(["--help"])).stdout;
    const commands = help.slice(help.indexOf("Commands:")).split("\n\n")[0]!.split("\n").slice(1).map((l) =>
      /^ {2}(\w+)/.exec(l)?.[1]
    )
      .filter((c): c is string => c !== undefined && c !== "help");
    assert(commands.length >= 16, commands.join(" "));
    for (const c of commands) assertMatch(page, new RegExp(`^ {3}kmq ${c}( |$)`, "m"), c);
    // every option of every command, as its --help lists it
    for (const c of commands) {
      const flags = [...(await run([c, "--help"])).stdout.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) =>
        m[1]!
      );
      for (const flag of flags) assert(page.includes(flag), `${c} ${flag}`);
    }
    assertMatch(
      page,
      /kmq consume -q orders --exit-at-end --template '%k %h\{tenant\} %b\\n'/,
      "examples kept whole",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
