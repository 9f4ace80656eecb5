/**
 * scripts/bench.ts case 8: kmq export and kmq import beside the commands doing the same broker work
 * (consume -o json of the same queue, produce --jsonl of the same records), and the peak RSS of
 * both on a 1 GiB queue.
 */

interface Measured {
  seconds: number;
  mib: number;
  code: number;
  stderr: string;
}

/** Wall time, peak RSS and exit code of `bin args` (stdout to `out`, stdin from `input`). */
async function measure(bin: string, args: string[], url: string, io: { out?: string; input?: string } = {}) {
  const shell = `${[bin, ...args].map((a) => `'${a}'`).join(" ")}` +
    (io.input ? ` < '${io.input}'` : "") + (io.out ? ` > '${io.out}'` : " > /dev/null");
  const started = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", "sh", "-c", shell],
    env: { KMQ_URL: url },
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  return {
    seconds: (performance.now() - started) / 1000,
    mib: Number(lines[lines.length - 1]) / 1024,
    code: out.code,
    stderr: lines.slice(0, -1).join("\n"),
  } satisfies Measured;
}

async function fill(bin: string, url: string, queue: string, lines: string): Promise<void> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `'${bin}' produce -e '' -r '${queue}' -q '${queue}' --lines < '${lines}'`],
    env: { KMQ_URL: url },
  }).output();
  if (!r.success) throw new Error(`filling ${queue}: ${new TextDecoder().decode(r.stderr)}`);
}

async function remove(bin: string, url: string, ...queues: string[]): Promise<void> {
  for (const q of queues) {
    await new Deno.Command(bin, {
      args: ["delete", "queue", q],
      env: { KMQ_URL: url },
      stdout: "null",
      stderr: "null",
    })
      .output();
  }
}

function say(what: string, m: Measured, n: number): void {
  const rate = Math.round(n / m.seconds);
  console.log(
    `  ${what.padEnd(44)} ${m.seconds.toFixed(2)} s  ${rate} msg/s  peak RSS ${
      m.mib.toFixed(0)
    } MiB  exit ${m.code}`,
  );
  if (m.code !== 0) console.log(`    ${m.stderr}`);
}

async function linesFile(dir: string, n: number, bytes: number): Promise<string> {
  const path = `${dir}/transfer-${n}-${bytes}.txt`;
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const line = new TextEncoder().encode("x".repeat(bytes - 1) + "\n");
  const chunk = new Uint8Array(line.length * 256);
  for (let i = 0; i < 256; i++) chunk.set(line, i * line.length);
  for (let i = 0; i < n / 256; i++) await f.write(chunk);
  f.close();
  return path;
}

/** One size: export, its consume baseline, import, its produce baseline (fresh queues each). */
async function round(bin: string, url: string, dir: string, n: number, bytes: number): Promise<void> {
  const lines = await linesFile(dir, n, bytes);
  const [src, dst, base] = [`kmq-bench-x-${n}`, `kmq-bench-y-${n}`, `kmq-bench-z-${n}`];
  const file = `${dir}/export-${n}.kmq`;
  try {
    await remove(bin, url, src, dst, base);
    await fill(bin, url, src, lines);
    say(
      "kmq export (held, put back in order)",
      await measure(bin, ["export", "--force", "-q", src, file], url),
      n,
    );
    const dump = `${dir}/dump-${n}.jsonl`;
    say(
      "baseline: kmq consume --exit-at-end -o json",
      await measure(bin, ["consume", "-q", src, "--no-declare", "--exit-at-end", "-o", "json"], url, {
        out: dump,
      }),
      n,
    );
    await Deno.remove(`${file}.import-progress`).catch(() => {});
    say(
      "kmq import (confirmed, resumable)",
      await measure(bin, ["import", "--rename", `${src}=${dst}`, file], url),
      n,
    );
    say(
      "baseline: kmq produce --jsonl (confirmed)",
      await measure(bin, ["produce", "--jsonl", "-e", "", "-r", base, "-q", base], url, { input: dump }),
      n,
    );
    await Deno.remove(dump);
  } finally {
    await remove(bin, url, src, dst, base);
    await Deno.remove(file).catch(() => {});
    await Deno.remove(`${file}.import-progress`).catch(() => {});
    await Deno.remove(lines);
  }
}

export async function caseEight(bin: string, url: string, dir: string): Promise<void> {
  console.log(
    "\ncase 8a: 200000 16-byte messages, one classic queue: export and import beside consume and produce",
  );
  await round(bin, url, dir, 200_000, 16);
  console.log("\ncase 8b: a 1 GiB queue (262144 messages of 4 KiB): export and import, peak RSS");
  await round(bin, url, dir, 262_144, 4096);
}
