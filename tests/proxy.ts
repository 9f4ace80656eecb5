/**
 * A TCP proxy between kmq and the broker that a test can cut: every open connection is dropped
 * at once, as a network failure or a load balancer would. Closed with `close()`, in `finally`.
 */
export class CuttableProxy {
  readonly port: number;
  private readonly listener: Deno.Listener;
  private readonly open = new Set<Deno.Conn>();
  private readonly accepting: Promise<void>;
  /** Connections the proxy has accepted so far. */
  accepted = 0;

  constructor(private readonly target: { hostname: string; port: number }) {
    this.listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.listener.addr as Deno.NetAddr).port;
    this.accepting = this.accept();
  }

  private async accept(): Promise<void> {
    try {
      for await (const client of this.listener) {
        this.accepted++;
        this.forward(client).catch(() => {});
      }
    } catch {
      // listener closed
    }
  }

  private async forward(client: Deno.Conn): Promise<void> {
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect(this.target);
    } catch {
      client.close();
      return;
    }
    this.open.add(client);
    this.open.add(upstream);
    const pipe = (from: Deno.Conn, to: Deno.Conn) => from.readable.pipeTo(to.writable).catch(() => {});
    await Promise.all([pipe(client, upstream), pipe(upstream, client)]);
    for (const c of [client, upstream]) {
      this.open.delete(c);
      try {
        c.close();
      } catch {
        // already closed
      }
    }
  }

  /** Drops every connection that passes through the proxy now. */
  cut(): void {
    for (const c of this.open) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    this.open.clear();
  }

  private closed = false;

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listener.close();
    this.cut();
    await this.accepting;
  }
}
