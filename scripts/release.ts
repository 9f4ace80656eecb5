/**
 * `deno task release`: one archive per platform in dist/release/, from the version in
 * package.json, and a SHA256SUMS file over them.
 *
 *   deno task release                     # bun cross-compiles every target (the release workflow's path)
 *   deno task release --compiler deno     # deno compile --target (the alternative;
 *                                         # bun still builds linux-x64-musl, which Deno lacks)
 *   deno task release --only linux-x64,linux-arm64
 *
 * Each archive, kmq-<version>-<target>.tar.gz (.zip for Windows), holds one folder of the same
 * name with the executable, README.md, LICENSE, the reference (docs/reference.md as reference.md) and the manual page kmq.1 (kmq man). Archives are built reproducibly (sorted
 * entries, fixed times and owners), so the same binaries give the same checksums.
 */
import { type Target, TARGETS } from "./targets.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const OUT = `${ROOT}dist/release`;

interface Options {
  compiler: "bun" | "deno";
  only?: string[];
}

function parseArgs(args: string[]): Options {
  const o: Options = { compiler: "bun" };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--compiler" && (args[i + 1] === "bun" || args[i + 1] === "deno")) {
      o.compiler = args[++i] as "bun" | "deno";
    } else if (arg === "--only" && args[i + 1]) o.only = args[++i]!.split(",");
    else throw new Error(`release: unknown argument '${arg}' (--compiler bun|deno, --only T1,T2)`);
  }
  const unknown = o.only?.filter((name) => !TARGETS.some((t) => t.name === name)) ?? [];
  if (unknown.length > 0) {
    throw new Error(
      `release: unknown target ${unknown.join(", ")} (${TARGETS.map((t) => t.name).join(", ")})`,
    );
  }
  return o;
}

async function sh(cmd: string, args: string[], cwd = ROOT): Promise<void> {
  const { code, stderr } = await new Deno.Command(cmd, { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${code}\n${new TextDecoder().decode(stderr)}`);
  }
}

async function compile(target: Target, compiler: Options["compiler"], outfile: string): Promise<void> {
  // deno compile has no musl target: that one always comes from bun
  if (compiler === "bun" || target.deno === undefined) {
    await sh("bash", ["scripts/build-offline.sh", `--target=${target.bun}`, "--outfile", outfile]);
  } else {
    await sh("bash", [
      "scripts/deno.sh",
      "compile",
      "-A",
      "--target",
      target.deno,
      "--output",
      outfile,
      "main.ts",
    ]);
  }
}

async function archive(folder: string, target: Target): Promise<string> {
  const name = `${folder}${target.windows ? ".zip" : ".tar.gz"}`;
  if (target.windows) {
    await sh("find", [folder, "-exec", "touch", "-h", "-d", "1980-01-02T00:00:00Z", "{}", "+"], OUT);
    await sh("zip", ["-q", "-X", "-r", name, folder], OUT);
  } else {
    await sh("bash", [
      "-c",
      `set -o pipefail; tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "$1" | gzip -n -9 > "$2"`,
      "tar",
      folder,
      name,
    ], OUT);
  }
  return name;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function main(): Promise<void> {
  const o = parseArgs(Deno.args);
  const { version } = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`)) as { version: string };
  await Deno.remove(OUT, { recursive: true }).catch(() => {});
  await Deno.mkdir(OUT, { recursive: true });
  const lines: string[] = [];
  // the manual page, from the same command tree as --help (kmq man), once for every archive
  const man = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${ROOT}main.ts`, "man"],
    stdout: "piped",
  }).output();
  if (!man.success) throw new Error("kmq man failed");
  for (const target of TARGETS.filter((t) => o.only === undefined || o.only.includes(t.name))) {
    const folder = `kmq-${version}-${target.name}`;
    await Deno.mkdir(`${OUT}/${folder}`);
    const exe = `${OUT}/${folder}/kmq${target.windows ? ".exe" : ""}`;
    const started = performance.now();
    await compile(target, o.compiler, exe);
    for (
      const [doc, as] of [["README.md", "README.md"], ["LICENSE", "LICENSE"], [
        "docs/reference.md",
        "reference.md",
      ]]
    ) {
      await Deno.copyFile(`${ROOT}${doc}`, `${OUT}/${folder}/${as}`);
    }
    await Deno.writeFile(`${OUT}/${folder}/kmq.1`, man.stdout);
    const name = await archive(folder, target);
    await Deno.remove(`${OUT}/${folder}`, { recursive: true });
    lines.push(`${await sha256(`${OUT}/${name}`)}  ${name}`);
    console.log(`${name} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  }
  await Deno.writeTextFile(`${OUT}/SHA256SUMS`, lines.join("\n") + "\n");
  console.log(`dist/release/SHA256SUMS: ${lines.length} archives`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error((err as Error).message);
    Deno.exit(1);
  }
}
