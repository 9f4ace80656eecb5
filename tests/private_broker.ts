/**
 * A RabbitMQ node of the test's own (own node name, ports and data dir), for tests that stop or
 * restart a broker: the shared broker is never touched. `close()` stops it and removes its files;
 * call it in `finally`.
 */
function freePort(): number {
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

export class PrivateBroker {
  readonly port = freePort();
  readonly node = `kmqtest-${crypto.randomUUID().slice(0, 8)}@localhost`;
  readonly url = `amqp://guest:guest@127.0.0.1:${this.port}/`;
  private dir = "";

  private env(): Record<string, string> {
    return {
      RABBITMQ_CONF_ENV_FILE: `${this.dir}/env.conf`, // not the system's, which pins port 5672
      RABBITMQ_CONFIG_FILE: `${this.dir}/rabbitmq.conf`,
      RABBITMQ_NODENAME: this.node,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(freePort()),
      RABBITMQ_MNESIA_BASE: `${this.dir}/mnesia`,
      RABBITMQ_LOG_BASE: `${this.dir}/log`,
      RABBITMQ_ENABLED_PLUGINS_FILE: `${this.dir}/plugins`,
      RABBITMQ_PID_FILE: `${this.dir}/pid`,
    };
  }

  /** Starts the node and waits until it accepts AMQP connections. */
  async start(): Promise<void> {
    this.dir = await Deno.makeTempDir({ prefix: "kmq-node-" });
    await Deno.writeTextFile(`${this.dir}/plugins`, "[].\n");
    await Deno.writeTextFile(`${this.dir}/env.conf`, "");
    await Deno.writeTextFile(`${this.dir}/rabbitmq.conf`, `listeners.tcp.default = 127.0.0.1:${this.port}\n`);
    // Debian's rabbitmq-server runs the node as the rabbitmq user
    await sh("chown", ["-R", "rabbitmq:rabbitmq", this.dir]);
    const out = await sh("rabbitmq-server", ["-detached"], this.env());
    if (!out.success) throw new Error(`rabbitmq-server: ${new TextDecoder().decode(out.stderr)}`);
    await this.waitForPort(60_000);
  }

  private async waitForPort(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error(`private RabbitMQ node ${this.node} did not listen on ${this.port}`);
  }

  /** Stops and starts the broker application: every connection is closed, durable data stays. */
  async restart(): Promise<void> {
    await sh("rabbitmqctl", ["-n", this.node, "stop_app"]);
    await sh("rabbitmqctl", ["-n", this.node, "start_app"]);
    await this.waitForPort(30_000);
  }

  async close(): Promise<void> {
    if (!this.dir) return;
    await sh("rabbitmqctl", ["-n", this.node, "stop"]);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    this.dir = "";
  }
}
