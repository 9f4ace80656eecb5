/**
 * Checks of `deno task release`'s output in dist/release/ (run by `deno task test:release`, which
 * builds it first): checksums, archive contents and formats, the linux-x64 binary and the
 * linux-arm64 one under qemu-aarch64 against the local broker, install.sh against a local HTTP
 * server, and the GitHub workflows' syntax and tasks.
 */
import { parse } from "yaml";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { TEST_URL, unique, withCleanup } from "../helpers.ts";
import { TARGETS } from "../../scripts/targets.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const RELEASE = `${ROOT}dist/release`;
const { version, repository } = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`)) as {
  version: string;
  repository: { url: string };
};
const decoder = new TextDecoder();

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function exec(cmd: string, args: string[], options: Deno.CommandOptions = {}): Promise<Output> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", ...options }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function archiveOf(target: string): string {
  return `kmq-${version}-${target}${target.startsWith("windows") ? ".zip" : ".tar.gz"}`;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Unpacks one archive into a new temporary directory; returns the folder inside it. */
async function unpack(target: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kmq-release-" });
  const name = archiveOf(target);
  const out = name.endsWith(".zip")
    ? await exec("unzip", ["-q", `${RELEASE}/${name}`, "-d", dir])
    : await exec("tar", ["-xzf", `${RELEASE}/${name}`, "-C", dir]);
  assertEquals(out.code, 0, out.stderr);
  return `${dir}/kmq-${version}-${target}`;
}

/** --version, then one message through a queue of its own and back. */
async function roundTrip(kmq: string[], label: string): Promise<void> {
  const [cmd, ...pre] = kmq;
  const env = { KMQ_URL: TEST_URL };
  const v = await exec(cmd!, [...pre, "--version"], { env });
  assertEquals([v.code, v.stdout.trim()], [0, version], v.stderr);
  const q = unique("kmq-release");
  await withCleanup({ queues: [q] }, async () => {
    const body = `from ${label}`;
    const p = await exec(cmd!, [...pre, "produce", "-e", "", "-r", q, "-q", q, body], { env });
    assertEquals(p.code, 0, p.stderr);
    const c = await exec(cmd!, [...pre, "consume", "-e", "", "-q", q, "-n", "1"], { env });
    assertEquals([c.code, c.stdout], [0, `${body}\n`], c.stderr);
  });
}

Deno.test("release: SHA256SUMS lists one archive per target, each with its checksum", async () => {
  const lines = (await Deno.readTextFile(`${RELEASE}/SHA256SUMS`)).trimEnd().split("\n");
  assertEquals(lines.map((l) => l.split("  ")[1]), TARGETS.map((t) => archiveOf(t.name)));
  for (const line of lines) {
    const [hash, name] = line.split("  ");
    assertEquals(await sha256(`${RELEASE}/${name}`), hash, name);
  }
  const check = await exec("sha256sum", ["-c", "SHA256SUMS"], { cwd: RELEASE });
  assertEquals(check.code, 0, check.stdout + check.stderr);
});

Deno.test("release: each archive holds the executable for its platform, README.md, LICENSE, reference.md and kmq.1", async () => {
  for (const target of TARGETS) {
    const folder = await unpack(target.name);
    try {
      const exe = `kmq${target.windows ? ".exe" : ""}`;
      assertEquals(
        [...Deno.readDirSync(folder)].map((e) => e.name).sort(),
        ["LICENSE", "README.md", "kmq.1", "reference.md", exe].sort(),
      );
      // the manual page renders without a warning, and names every command
      const lint = await exec("groff", ["-man", "-Tutf8", "-ww", "-z", `${folder}/kmq.1`]);
      assertEquals([lint.code, lint.stderr], [0, ""], target.name);
      assertMatch(await Deno.readTextFile(`${folder}/kmq.1`), /^\.B kmq bench /m);
      const kind = await exec("file", ["-b", `${folder}/${exe}`]);
      assertMatch(kind.stdout, target.file, target.name);
      const size = (await Deno.stat(`${folder}/${exe}`)).size;
      assert(size > 20e6 && size < 250e6, `${target.name}: ${size} bytes`);
      assertEquals(await Deno.readTextFile(`${folder}/LICENSE`), await Deno.readTextFile(`${ROOT}LICENSE`));
    } finally {
      await Deno.remove(`${folder}/..`, { recursive: true });
    }
  }
});

Deno.test("release: the linux-x64 binary prints its version and makes a round trip", async () => {
  const folder = await unpack("linux-x64");
  try {
    await roundTrip([`${folder}/kmq`], "linux-x64");
  } finally {
    await Deno.remove(`${folder}/..`, { recursive: true });
  }
});

Deno.test("release: the linux-arm64 binary, under qemu-aarch64, prints its version and makes a round trip", async () => {
  const folder = await unpack("linux-arm64");
  try {
    // Debian's libc6-arm64-cross puts the arm64 C library under /usr/aarch64-linux-gnu
    await roundTrip(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", `${folder}/kmq`], "linux-arm64");
  } finally {
    await Deno.remove(`${folder}/..`, { recursive: true });
  }
});

/** Serves a directory over HTTP on 127.0.0.1 while `fn` runs. */
async function serving(dir: string, fn: (url: string) => Promise<void>): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const name = decodeURIComponent(new URL(req.url).pathname.slice(1));
    if (name.includes("/") || name.startsWith(".")) return new Response("no", { status: 404 });
    try {
      return new Response(await Deno.readFile(`${dir}/${name}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

/** Runs install.sh with a download URL, an install dir and, optionally, a PATH with a fake uname. */
function install(url: string, dir: string, path = Deno.env.get("PATH")!): Promise<Output> {
  return exec("/bin/sh", [`${ROOT}install.sh`], {
    env: { KMQ_DOWNLOAD_URL: url, KMQ_INSTALL_DIR: dir, PATH: path, HOME: dir },
    clearEnv: true,
  });
}

Deno.test("install.sh: installs the verified binary, which runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kmq-install-" });
  try {
    await serving(RELEASE, async (url) => {
      const r = await install(url, `${dir}/bin`);
      assertEquals(r.code, 0, r.stderr);
      assertMatch(r.stdout, new RegExp(`installed kmq-${version} to ${dir}/bin/kmq`));
      assertMatch(r.stdout, /is not on your PATH: add {2}export PATH=/);
      const v = await exec(`${dir}/bin/kmq`, ["--version"]);
      assertEquals(v.stdout.trim(), version);
      assertEquals([...Deno.readDirSync(`${dir}/bin`)].map((e) => e.name), ["kmq"]);
      assertMatch(r.stdout, /no man directory at .*\/share\/man: 'kmq man > FILE' writes the manual page/);
      // where a man directory exists, the manual page goes there too
      await Deno.mkdir(`${dir}/share/man`, { recursive: true });
      const again = await install(url, `${dir}/bin`);
      assertEquals(again.code, 0, again.stderr);
      assertMatch(again.stdout, new RegExp(`installed the manual page to ${dir}/share/man/man1/kmq.1`));
      const page = await exec("man", ["-l", `${dir}/share/man/man1/kmq.1`], {
        env: { MANPAGER: "cat", MANWIDTH: "80" },
      });
      assertEquals(page.code, 0, page.stderr);
      assertMatch(page.stdout, /kmq consume \[options\] \[command\.\.\.\]/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install.sh: a corrupted archive is refused and nothing is installed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kmq-install-" });
  const served = `${dir}/served`;
  try {
    await Deno.mkdir(served);
    await Deno.copyFile(`${RELEASE}/SHA256SUMS`, `${served}/SHA256SUMS`);
    const bytes = await Deno.readFile(`${RELEASE}/${archiveOf("linux-x64")}`);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    await Deno.writeFile(`${served}/${archiveOf("linux-x64")}`, bytes);
    await serving(served, async (url) => {
      const r = await install(url, `${dir}/bin`);
      assertEquals(r.code, 1);
      assertMatch(
        r.stderr,
        /^kmq install: checksum mismatch for kmq-.*linux-x64\.tar\.gz .*nothing installed\n$/,
      );
      assertEquals(await Deno.stat(`${dir}/bin`).then(() => "exists", () => "absent"), "absent");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install.sh: an unsupported platform, or one with no archive listed, gets one clear line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kmq-install-" });
  const fake = `${dir}/fake`;
  try {
    await Deno.mkdir(fake);
    for (const tool of ["grep", "head", "mktemp", "rm", "curl", "cut", "sha256sum", "tar", "mkdir", "ldd"]) {
      const path = (await exec("sh", ["-c", `command -v ${tool}`])).stdout.trim();
      if (path) await Deno.symlink(path, `${fake}/${tool}`);
    }
    const uname = (s: string, m: string) =>
      Deno.writeTextFile(`${fake}/uname`, `#!/bin/sh\n[ "$1" = -s ] && echo ${s} || echo ${m}\n`, {
        mode: 0o755,
      });
    await serving(RELEASE, async (url) => {
      await uname("Plan9", "mips");
      const r = await install(url, `${dir}/bin`, fake);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /^kmq install: no kmq build for Plan9\/mips .*build it from source.*\n$/);
      await uname("Linux", "riscv64");
      const riscv = await install(url, `${dir}/bin`, fake);
      assertEquals(riscv.code, 1);
      assertMatch(
        riscv.stderr,
        /^kmq install: no kmq build for linux\/riscv64 \(there are x64 and arm64 builds\)/,
      );
      await Deno.writeTextFile(`${dir}/SHA256SUMS`, "0  kmq-9.9.9-linux-x64.tar.gz\n");
    });
    await serving(dir, async (url) => {
      await uname("Darwin", "arm64");
      const r = await install(url, `${dir}/bin`, fake);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /^kmq install: no darwin-arm64 archive listed in http:.*SHA256SUMS\n$/);
    });
    assertEquals(await Deno.stat(`${dir}/bin`).then(() => "exists", () => "absent"), "absent");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install.sh: downloads from the repository package.json names", async () => {
  const script = await Deno.readTextFile(`${ROOT}install.sh`);
  assert(script.includes(`${repository.url}/releases/latest/download`), repository.url);
  const sh = await exec("sh", ["-n", `${ROOT}install.sh`]);
  assertEquals(sh.code, 0, sh.stderr);
});

Deno.test("workflows: valid YAML whose `deno task` steps and scripts exist", async () => {
  const tasks = Object.keys(JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks);
  for (const file of ["ci.yml", "release.yml"]) {
    const text = await Deno.readTextFile(`${ROOT}.github/workflows/${file}`);
    const workflow = parse(text) as { on: unknown; jobs: Record<string, { steps: { run?: string }[] }> };
    assert(workflow.on !== undefined && Object.keys(workflow.jobs).length > 0, file);
    const runs = Object.values(workflow.jobs).flatMap((job) => job.steps.map((s) => s.run ?? ""));
    for (const [, task] of runs.join("\n").matchAll(/deno task ([\w:-]+)/g)) {
      assert(tasks.includes(task!), `${file} calls 'deno task ${task}', which deno.json lacks`);
    }
    for (const [, path] of runs.join("\n").matchAll(/(?:bash|sh) (\S+\.sh|\.ci\/run)/g)) {
      assert(
        await Deno.stat(`${ROOT}${path}`).then(() => true, () => false),
        `${file} runs ${path}, missing`,
      );
    }
  }
});
