/** Sums the figures the fault scenarios wrote (one JSON line per scenario run) into a table. */
interface Figures {
  scenario: string;
  sent: number;
  received: number;
  duplicated: number;
  lost: number;
  seconds: number;
  note?: string;
}

const rows = new Map<string, Figures & { runs: number; notes: string[] }>();
const text = await Deno.readTextFile(Deno.args[0] ?? "/dev/stdin");
for (const line of text.split("\n").filter((l) => l.trim() !== "")) {
  const f = JSON.parse(line) as Figures;
  const row = rows.get(f.scenario) ??
    { scenario: f.scenario, sent: 0, received: 0, duplicated: 0, lost: 0, seconds: 0, runs: 0, notes: [] };
  row.runs++;
  row.sent += f.sent;
  row.received += f.received;
  row.duplicated += f.duplicated;
  row.lost += f.lost;
  row.seconds = Math.max(row.seconds, f.seconds);
  if (f.note) row.notes.push(f.note);
  rows.set(f.scenario, row);
}
console.log("| scenario | runs | sent | received | duplicated | lost | slowest run | notes |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows.values()) {
  console.log(
    `| ${r.scenario} | ${r.runs} | ${r.sent} | ${r.received} | ${r.duplicated} | ${r.lost} | ${r.seconds} s | ${
      r.notes.join("; ")
    } |`,
  );
}
