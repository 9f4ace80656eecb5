/**
 * Where one message published to an exchange goes, worked out as RabbitMQ routes it: each binding
 * of the exchange tried (direct: the key; fanout: all; topic: the pattern; headers: x-match),
 * exchange-to-exchange bindings followed with the same message, the alternate exchange taken when
 * the exchange's own bindings take nothing, every exchange visited once.
 */
import type { FieldValue } from "../messages/fields.ts";
import { type BindingDef, type Definitions, setting } from "./definitions.ts";
import { headersMatch, topicMatches, type Verdict } from "./matching.ts";

export interface RouteMessage {
  routingKey: string;
  headers: Map<string, FieldValue>;
}

/** One binding tried: why it took the message or not, and where it led. */
export interface Step {
  binding: BindingDef;
  verdict: Verdict;
  /** For a binding to an exchange that took the message: that exchange's routing. */
  next?: Hop;
}

/** One exchange the message passed. */
export interface Hop {
  exchange: string;
  type: string;
  steps: Step[];
  /** Taken because the exchange's own bindings took nothing. */
  alternate?: { name: string; from: string; hop?: Hop; missing?: boolean };
  /** Seen before on this path: not routed again (RabbitMQ visits each exchange once). */
  seen?: boolean;
}

export interface Route {
  /** The tree from the exchange published to; undefined for the default exchange. */
  hop?: Hop;
  queues: string[];
  /** Exchanges the message passed, in the order first reached. */
  exchanges: string[];
}

/** Routes `msg` from `exchange` (which must exist in `defs`; "" is the default exchange). */
export function route(defs: Definitions, exchange: string, msg: RouteMessage): Route {
  const queues = new Set<string>();
  if (exchange === "") {
    if (defs.queues.has(msg.routingKey)) queues.add(msg.routingKey);
    return { queues: [...queues], exchanges: [] };
  }
  const seen = new Set<string>();
  const hop = visit(defs, exchange, msg, seen, queues);
  return { hop, queues: [...queues].sort(), exchanges: [...seen] };
}

function visit(
  defs: Definitions,
  name: string,
  msg: RouteMessage,
  seen: Set<string>,
  queues: Set<string>,
): Hop {
  const x = defs.exchanges.get(name)!;
  const hop: Hop = { exchange: name, type: x.type, steps: [] };
  if (seen.has(name)) {
    hop.seen = true;
    return hop;
  }
  seen.add(name);
  let took = 0;
  for (const binding of defs.bindings.filter((b) => b.source === name)) {
    const verdict = decide(x.type, binding, msg);
    const step: Step = { binding, verdict };
    hop.steps.push(step);
    if (!verdict.matched) continue;
    took++;
    if (binding.destinationType === "queue") {
      if (defs.queues.has(binding.destination)) queues.add(binding.destination);
    } else if (defs.exchanges.has(binding.destination)) {
      step.next = visit(defs, binding.destination, msg, seen, queues);
    }
  }
  if (took === 0) {
    const ae = setting(defs, "exchange", name, "alternate-exchange", "alternate-exchange");
    if (ae !== undefined) {
      const target = String(ae.value);
      hop.alternate = defs.exchanges.has(target)
        ? { name: target, from: ae.from, hop: visit(defs, target, msg, seen, queues) }
        : { name: target, from: ae.from, missing: true };
    }
  }
  return hop;
}

function decide(type: string, b: BindingDef, msg: RouteMessage): Verdict {
  switch (type) {
    case "direct":
      return b.routingKey === msg.routingKey
        ? { matched: true, why: `key '${b.routingKey}' is the routing key` }
        : { matched: false, why: `key '${b.routingKey}' is not '${msg.routingKey}'` };
    case "fanout":
      return { matched: true, why: "fanout: every binding takes it" };
    case "topic":
      return topicMatches(b.routingKey, msg.routingKey)
        ? { matched: true, why: `pattern '${b.routingKey}' matches '${msg.routingKey}'` }
        : { matched: false, why: `pattern '${b.routingKey}' does not match '${msg.routingKey}'` };
    case "headers":
      return headersMatch(b.arguments, msg.headers);
    default:
      return { matched: false, why: `exchange type '${type}' is a plugin's: kmq cannot evaluate it` };
  }
}
