/**
 * scripts/bench.ts case 9: the peak RSS and time of `kmq info` (tree and -o json) against a
 * management API that lists 200,000 queues, as a big broker's does. The API is a stand-in served
 * from this process: RabbitMQ's answers with the columns kmq asks for, every queue bound to the
 * default exchange (implicit, as on a real broker) and to one topic exchange.
 *
 * Baseline beside it in the same run: a lean reader of the same three answers (Python's json.load
 * of each, counted and dropped), and the --before build when one is given.
 */
const QUEUES = 200_000;

export function answers(): Map<string, Uint8Array<ArrayBuffer>> {
  const encoder = new TextEncoder();
  const name = (i: number) => `orders.region-${i % 50}.shard-${String(i).padStart(6, "0")}`;
  const queues: string[] = [];
  const bindings: string[] = [];
  for (let i = 0; i < QUEUES; i++) {
    const q = name(i);
    queues.push(
      `{"arguments":{"x-queue-type":"classic"},"auto_delete":false,"consumers":${i % 3},"durable":true,` +
        `"exclusive":false,"messages_ready":${i % 1000},"messages_unacknowledged":${i % 7},"name":"${q}",` +
        `"type":"classic"}`,
    );
    bindings.push(
      `{"arguments":{},"destination":"${q}","destination_type":"queue","routing_key":"${q}","source":""}`,
    );
  }
  for (let i = 0; i < QUEUES; i++) {
    const q = name(i);
    bindings.push(
      `{"arguments":{},"destination":"${q}","destination_type":"queue","routing_key":"orders.${i}.#",` +
        `"source":"orders"}`,
    );
  }
  const exchanges = ["", "amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.topic", "orders"].map((
    e,
  ) =>
    `{"arguments":{},"auto_delete":false,"durable":true,"internal":false,"name":"${e}",` +
    `"type":"${e === "orders" || e === "amq.topic" ? "topic" : "direct"}"}`
  );
  return new Map([
    ["queues", encoder.encode(`[${queues.join(",")}]`)],
    ["bindings", encoder.encode(`[${bindings.join(",")}]`)],
    ["exchanges", encoder.encode(`[${exchanges.join(",")}]`)],
  ]);
}

/** Peak RSS (MiB), seconds and exit code of `bin args`, its stdout to /dev/null. */
async function measure(bin: string, args: string[], env: Record<string, string>) {
  const started = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", bin, ...args],
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  return {
    mib: Number(lines[lines.length - 1]) / 1024,
    seconds: (performance.now() - started) / 1000,
    code: out.code,
    stderr: lines.slice(0, -1).join("\n").slice(0, 300),
  };
}

const LEAN_READER = `
import json, sys, urllib.request
base = sys.argv[1]
for what in ("queues", "bindings", "exchanges"):
    with urllib.request.urlopen(base + what + "/%2F") as r:
        print(what, len(json.load(r)))
`;

export async function caseNine(bin: string, before: string | undefined, runs: number): Promise<void> {
  const served = answers();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (req) => {
    const what = new URL(req.url).pathname.split("/")[2] ?? "";
    const body = served.get(what);
    return body
      ? new Response(body, { headers: { "content-type": "application/json" } })
      : new Response('{"error":"Object Not Found","reason":"Not Found"}', { status: 404 });
  });
  const api = `http://127.0.0.1:${server.addr.port}/api/`;
  const mb = (k: string) => (served.get(k)!.length / 1024 / 1024).toFixed(1);
  console.log(
    `\ncase 9: kmq info against an API listing ${QUEUES} queues (answers: queues ${mb("queues")} MiB, ` +
      `bindings ${mb("bindings")} MiB); peak RSS, medians of ${runs}`,
  );
  const env = { KMQ_URL: "amqp://guest:guest@127.0.0.1:5672/" };
  const contenders: [string, string, string[]][] = [
    ["python3 json.load (lean reader)", "python3", ["-c", LEAN_READER, api]],
  ];
  for (const [name, path] of [["dist/kmq", bin], ["--before", before]] as const) {
    if (!path) continue;
    contenders.push([`${name} info`, path, ["info", "--api-url", api]]);
    contenders.push([`${name} info -o json`, path, ["info", "-o", "json", "--api-url", api]]);
  }
  const results = new Map<string, { mib: number[]; seconds: number[] }>();
  try {
    for (let i = 0; i < runs; i++) {
      for (const [name, cmd, args] of contenders) {
        const m = await measure(cmd, args, env);
        if (m.code !== 0) throw new Error(`${name} exited ${m.code}: ${m.stderr}`);
        const r = results.get(name) ?? { mib: [], seconds: [] };
        r.mib.push(m.mib);
        r.seconds.push(m.seconds);
        results.set(name, r);
      }
    }
  } finally {
    await server.shutdown();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, r] of results) {
    const all = r.mib.map((x) => x.toFixed(0)).join(", ");
    console.log(
      `  ${name.padEnd(34)} peak RSS ${median(r.mib).toFixed(1).padStart(6)} MiB (runs: ${all})  ` +
        `${median(r.seconds).toFixed(2)} s`,
    );
  }
}
