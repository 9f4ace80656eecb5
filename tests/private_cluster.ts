/**
 * A private 3-node RabbitMQ cluster on this machine (own node names, ports and data dirs, joined
 * with `rabbitmqctl join_cluster`), for failover tests; the shared broker is never touched.
 * `close()` stops every node and removes its files.
 */
import { PrivateBroker } from "./private_broker.ts";

export class PrivateCluster {
  readonly nodes = [new PrivateBroker(), new PrivateBroker(), new PrivateBroker()];

  /** Every node's URL, comma-separated: kmq's broker list. */
  get urls(): string {
    return this.nodes.map((n) => n.url).join(",");
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
    const [seed, ...rest] = this.nodes;
    for (const n of rest) await n.joinCluster(seed!.node);
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.close()));
  }
}
