/**
 * A whole `kmq move` (and `kmq redrive`, which decides each message's way): the source checked,
 * the target opened, the passes run, the closing report and exit.
 */
import { brokerIdentity } from "../amqp/client-fixes.ts";
import { topologyFrom } from "../amqp/declarations.ts";
import { boundStop, Publisher } from "../amqp/publisher.ts";
import type { Sieve } from "../messages/filter.ts";
import { TakenCount } from "../messages/taken-count.ts";
import { ExitCode, KmqError, UsageError } from "../term/errors.ts";
import { liveLine, perSecond } from "../term/progress.ts";
import { checkSource, moveAll } from "./move-all.ts";
import type { Moved, MoveIo, MoveOptions } from "./move-options.ts";
import { PREFETCH } from "./source-pass.ts";

export async function runMove(asked: MoveOptions, io: MoveIo): Promise<void> {
  let o = asked;
  if (o.to === o.from && o.toBroker.url === o.broker.url) {
    throw new UsageError(`--from and --to are the same queue '${o.from}': nothing would move`);
  }
  // compiled before connecting: a bad expression is exit 2 with nothing touched
  const sieve: Sieve | undefined = o.filter === undefined ? undefined : {
    filter: new (await import("../messages/filter.ts")).MessageFilter(o.filter),
    hold: true,
    unmatched: 0,
  };
  // the source is checked first: a missing one creates no target queue and moves nothing
  const holds = sieve !== undefined ? "--filter" : o.route && !o.returnsFresh ? "a redrive" : undefined;
  const { identity: source, ready, quorum } = await checkSource(o, io, holds);
  if (o.exitAtEnd) {
    // what the source held now, and no more: messages arriving during the move stay
    if (ready === 0) {
      io.log.warn(`queue '${o.from}' holds nothing to move (--exit-at-end)`);
      return;
    }
    o = { ...o, count: Math.min(o.count ?? Infinity, ready) };
  }
  const { publisher, sameBroker } = await openTarget(o, io, source);
  const moved: Moved = {
    taken: 0,
    counted: new TakenCount(2 * PREFETCH),
    confirmed: 0,
    kept: 0,
    failed: 0,
    started: performance.now(),
  };
  const clearProgress = liveLine(io.stderr, () => {
    const rate = perSecond(moved.confirmed, moved.started);
    return [
      `kmq: moved ${moved.confirmed} message(s) (${rate} msg/s)`,
      `kmq: moved ${moved.confirmed}, ${rate}/s`,
    ];
  });
  const stopTimer = boundStop(publisher, o.stopTimeout, io.stop);
  try {
    // through the default exchange with each message's own key, a key naming the source loops
    // (a per-message route names its own destinations, and refuses the source itself)
    const loopsBack = sameBroker && o.toExchange === "" && o.routingKey === undefined && !o.route;
    await moveAll({ o, io, publisher, moved, sieve, loopsBack, sourceQuorum: quorum });
    await publisher.drain();
  } finally {
    stopTimer.dispose();
    clearProgress();
    await publisher.close();
    report(o, io, moved, sieve);
  }
  publisher.check();
  if (io.stop.aborted) {
    const signal = String(io.stop.reason);
    throw new KmqError(
      signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated,
      `stopped by ${signal}: moved ${moved.confirmed} message(s); the rest stay in queue '${o.from}'`,
    );
  }
}

/**
 * The publisher to the target, open; whether the target is on the source's broker and vhost
 * (`source`, its identity), where a target that is the source itself is refused.
 */
async function openTarget(
  o: MoveOptions,
  io: MoveIo,
  source: string,
): Promise<{ publisher: Publisher; sameBroker: boolean }> {
  const publisher = new Publisher({
    broker: o.toBroker,
    topology: topologyFrom({
      exchange: o.toExchange ?? "",
      exchangeType: "direct",
      queue: o.to,
      bindingKeys: [],
      durable: true,
      autoDelete: false,
      exclusive: false,
      // an exchange is never created by a move: it must exist; a target queue is declared if missing
      declare: o.to !== undefined,
    }),
    mandatory: true,
    confirm: true,
    retryTimeout: o.retryTimeout,
    log: io.log,
  });
  await publisher.open().catch((err: KmqError) => {
    if (o.toExchange === undefined || !/NOT_FOUND/.test(err.message)) throw err;
    throw new KmqError(
      ExitCode.brokerRefused,
      `the target exchange '${o.toExchange}' does not exist: a move creates no exchange; declare it first (kmq declare -e ${o.toExchange} …)`,
    );
  });
  const sameBroker = publisher.connection !== undefined && brokerIdentity(publisher.connection) === source;
  if (sameBroker && (o.to ?? (o.toExchange === "" ? o.routingKey : undefined)) === o.from) {
    await publisher.close();
    throw new UsageError(
      `the target is the source: queue '${o.from}' on the same broker and vhost (however the URLs are ` +
        `spelled): nothing would move; name another queue or exchange`,
    );
  }
  return { publisher, sameBroker };
}

/** The closing line: how many moved, at what rate, and what --filter left behind. */
function report(o: MoveOptions, io: MoveIo, moved: Moved, sieve: Sieve | undefined): void {
  const target = o.targetName ?? `'${o.to ?? o.toExchange!}'`;
  const rate = perSecond(moved.confirmed, moved.started);
  const left = sieve ? `; ${sieve.unmatched} did not match --filter and stay in '${o.from}'` : "";
  io.log.warn(
    `moved ${moved.confirmed} message(s) from queue '${o.from}' to ${target} (${rate} msg/s)${left}`,
  );
  if (sieve && sieve.filter.errors > 0) {
    io.log.info(
      `--filter could not be evaluated on ${sieve.filter.errors} message(s) (left in the source), the first: ${sieve.filter.firstError}`,
    );
  }
}
