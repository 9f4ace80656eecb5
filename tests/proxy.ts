/**
 * A TCP proxy between kmq and the broker that a test can cut — every open connection is dropped
 * at once, as a network failure or a load balancer would — or turn into a black hole: connections
 * stay open but nothing gets through (a dead route), so only heartbeats can notice. Closed with
 * `close()`, in `finally`.
 */
export class CuttableProxy {
  readonly port: number;
  private readonly listener: Deno.Listener;
  private readonly open = new Set<Deno.Conn>();
  private readonly accepting: Promise<void>;
  /** Connections the proxy has accepted so far. */
  accepted = 0;

  /** `port` 0 (the default) takes any free port. */
  constructor(private readonly target: { hostname: string; port: number }, port = 0) {
    this.listener = Deno.listen({ hostname: "127.0.0.1", port });
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
    // AMQP has no half-closed connections: when one side is gone, so is the other
    await Promise.race([this.pump(client, upstream), this.pump(upstream, client)]);
    for (const c of [client, upstream]) {
      this.open.delete(c);
      try {
        c.close();
      } catch {
        // already closed
      }
    }
  }

  /** Copies bytes until either side closes; in a black hole they are read and thrown away. */
  private async pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (let n = await from.read(buffer); n !== null; n = await from.read(buffer)) {
        if (this.blackHoled) continue;
        for (let off = 0; off < n;) off += await to.write(buffer.subarray(off, n));
      }
    } catch {
      // either side closed
    }
  }

  private blackHoled = false;

  /** From now on nothing gets through, in either direction; connections stay open. */
  blackHole(): void {
    this.blackHoled = true;
  }

  /** Forwards again (connections that lost bytes in the black hole are beyond repair). */
  resume(): void {
    this.blackHoled = false;
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
