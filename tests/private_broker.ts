/**
 * A RabbitMQ node of the test's own (own node name, ports and data dir), for tests that stop,
 * restart or kill a broker: the shared broker is never touched. `close()` stops it and removes its
 * files; call it in `finally` (it is safe to call twice, and after a failed start).
 */
import { AMQPClient } from "@cloudamqp/amqp-client";

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function sh(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Deno.CommandOutput> {
  return await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
}

/** PEM files (paths) for a TLS listener; the node asks for, but does not require, a client certificate. */
export interface NodeTls {
  cacert: string;
  cert: string;
  key: string;
}

export class PrivateBroker {
  readonly port = freePort();
  readonly tlsPort = freePort();
  private readonly distPort = freePort();
  readonly node = `kmqtest-${crypto.randomUUID().slice(0, 8)}@localhost`;
  readonly url = `amqp://guest:guest@127.0.0.1:${this.port}/`;
  private dir = "";

  /** The management plugin's HTTP port, when started with `management`. */
  readonly managementPort = freePort();

  constructor(private readonly tls?: NodeTls, private readonly options: { management?: boolean } = {}) {}

  private env(): Record<string, string> {
    return {
      RABBITMQ_CONF_ENV_FILE: `${this.dir}/env.conf`, // not the system's, which pins port 5672
      RABBITMQ_CONFIG_FILE: `${this.dir}/rabbitmq.conf`,
      RABBITMQ_NODENAME: this.node,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_MNESIA_BASE: `${this.dir}/mnesia`,
      RABBITMQ_LOG_BASE: `${this.dir}/log`,
      RABBITMQ_ENABLED_PLUGINS_FILE: `${this.dir}/plugins`,
      RABBITMQ_PID_FILE: `${this.dir}/pid`,
    };
  }

  /** Starts the node and waits until it accepts AMQP connections. */
  async start(): Promise<void> {
    this.dir = await Deno.makeTempDir({ prefix: "kmq-node-" });
    const plugins = this.options.management ? "rabbitmq_management" : "";
    await Deno.writeTextFile(`${this.dir}/plugins`, `[${plugins}].\n`);
    await Deno.writeTextFile(`${this.dir}/env.conf`, "");
    let conf = `listeners.tcp.default = 127.0.0.1:${this.port}\n`;
    if (this.options.management) {
      // statistics every 200 ms, so a test sees counts that are current; with TLS, HTTPS only
      conf += this.tls
        ? [
          `management.ssl.port = ${this.managementPort}`,
          `management.ssl.cacertfile = ${this.dir}/cacert.pem`,
          `management.ssl.certfile = ${this.dir}/cert.pem`,
          `management.ssl.keyfile = ${this.dir}/key.pem`,
          "",
        ].join("\n")
        : `management.tcp.port = ${this.managementPort}\nmanagement.tcp.ip = 127.0.0.1\n`;
      conf += "collect_statistics_interval = 200\n";
    }
    if (this.tls) {
      // the node runs as the rabbitmq user and must read the files: copy them into its own dir
      for (const [name, path] of Object.entries(this.tls)) {
        await Deno.copyFile(path, `${this.dir}/${name}.pem`);
      }
      conf += [
        `listeners.ssl.default = ${this.tlsPort}`, // every interface: localhost may be ::1
        `ssl_options.cacertfile = ${this.dir}/cacert.pem`,
        `ssl_options.certfile = ${this.dir}/cert.pem`,
        `ssl_options.keyfile = ${this.dir}/key.pem`,
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = false",
        "",
      ].join("\n");
    }
    await Deno.writeTextFile(`${this.dir}/rabbitmq.conf`, conf);
    // Debian's rabbitmq-server runs the node as the rabbitmq user
    await sh("chown", ["-R", "rabbitmq:rabbitmq", this.dir]);
    await this.launch();
  }

  private async launch(): Promise<void> {
    const out = await sh("rabbitmq-server", ["-detached"], this.env());
    if (!out.success) throw new Error(`rabbitmq-server: ${new TextDecoder().decode(out.stderr)}`);
    await this.waitForPort(60_000);
  }

  private async waitForPort(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        // the port opens a little before the node takes logins
        const client = new AMQPClient(this.url);
        await client.connect();
        await client.close();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error(`private RabbitMQ node ${this.node} did not listen on ${this.port}`);
  }

  private async ctl(...args: string[]): Promise<void> {
    const out = await sh("rabbitmqctl", ["-n", this.node, ...args]);
    if (!out.success) {
      throw new Error(`rabbitmqctl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
  }

  /** Makes this (started) node a member of `seed`'s cluster: its own data is reset. */
  async joinCluster(seed: string): Promise<void> {
    await this.ctl("stop_app");
    await this.ctl("reset");
    await this.ctl("join_cluster", seed);
    await this.startApp();
  }

  /** Stops the broker application: every connection is closed, durable data stays. */
  async stopApp(): Promise<void> {
    await this.ctl("stop_app");
  }

  async startApp(): Promise<void> {
    await this.ctl("start_app");
    await this.waitForPort(30_000);
  }

  /** Stops and starts the broker application. */
  async restart(): Promise<void> {
    await this.stopApp();
    await this.startApp();
  }

  /** The node's Erlang VM, killed with SIGKILL: no connection is closed politely. */
  async kill9(): Promise<void> {
    const pid = (await Deno.readTextFile(`${this.dir}/pid`)).trim();
    await sh("kill", ["-9", pid]);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await sh("kill", ["-0", pid])).success) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Freezes the node's Erlang VM (SIGSTOP): its connections stay open and silent, and the other
   * nodes do not see it go until net_ticktime (60 s) — a quorum queue led there stops answering.
   */
  async freeze(): Promise<void> {
    await sh("kill", ["-STOP", (await Deno.readTextFile(`${this.dir}/pid`)).trim()]);
  }

  /** Lets a {@link freeze}d node run again. */
  async thaw(): Promise<void> {
    await sh("kill", ["-CONT", (await Deno.readTextFile(`${this.dir}/pid`)).trim()]);
  }

  /**
   * Writes the node's metadata (queues, bindings) out to its table files now. RabbitMQ keeps it in
   * Mnesia's log and writes that out lazily, so a queue declared moments before a kill -9 can be
   * gone after it — with its messages.
   */
  async syncMetadata(): Promise<void> {
    await this.ctl("eval", "mnesia:dump_log().");
  }

  /** Starts the node again after {@link kill9}, on the same ports and data. */
  async relaunch(): Promise<void> {
    await this.launch();
  }

  /** Sets a memory alarm: the broker blocks every publishing connection until it is cleared. */
  /** How long a consumer may hold a message unacked before the broker closes its channel. */
  async setConsumerTimeout(ms: number): Promise<void> {
    await this.ctl("eval", `application:set_env(rabbit, consumer_timeout, ${ms}).`);
  }

  async setMemoryAlarm(): Promise<void> {
    await this.ctl("set_vm_memory_high_watermark", "0.00000001");
  }

  async clearMemoryAlarm(): Promise<void> {
    await this.ctl("set_vm_memory_high_watermark", "0.4");
  }

  /** Messages in a queue of this node (ready + unacked), via rabbitmqctl. */
  async queueMessages(queue: string): Promise<number> {
    const out = await sh("rabbitmqctl", ["-n", this.node, "-q", "list_queues", "name", "messages"]);
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.split("\t")[0] === queue);
    return Number(line?.split("\t")[1] ?? -1);
  }

  /** `rabbitmqctl list_queues` with the given columns, for a failing test to show the broker's view. */
  async describeQueues(...columns: string[]): Promise<string> {
    const out = await sh("rabbitmqctl", ["-n", this.node, "-q", "list_queues", ...columns]);
    return new TextDecoder().decode(out.stdout).trim();
  }

  async close(): Promise<void> {
    if (!this.dir) return;
    const stopped = await sh("rabbitmqctl", ["-n", this.node, "stop"]);
    if (!stopped.success) {
      // a node that does not answer: make sure it does not outlive the test
      const pid = await Deno.readTextFile(`${this.dir}/pid`).catch(() => "");
      if (pid.trim()) await sh("kill", ["-9", pid.trim()]);
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    this.dir = "";
  }
}

/** The plugin starts a little after AMQP: wait for its HTTP listener. */
export async function waitForApi(port: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/overview`, {
        headers: { authorization: `Basic ${btoa("guest:guest")}` },
      });
      await r.body?.cancel();
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the management API on port ${port} did not answer`);
}

/**
 * Runs `fn` with a private node that has the management plugin, and the environment that points
 * kmq at it (KMQ_URL and KMQ_API_URL); the node is removed afterwards, whatever happened.
 */
export async function withManagementNode(
  fn: (node: PrivateBroker, env: Record<string, string>) => Promise<void>,
): Promise<void> {
  const node = new PrivateBroker(undefined, { management: true });
  try {
    await node.start();
    await waitForApi(node.managementPort);
    await fn(node, { KMQ_URL: node.url, KMQ_API_URL: `http://127.0.0.1:${node.managementPort}` });
  } finally {
    await node.close();
  }
}
