// bench:rules — events per second through the rules engine with the whole SigmaHQ corpus and the
// default pack loaded, on one core, beside JSON.parse of the same events (the floor: any agent must at
// least parse what it evaluates). Prints progress on stderr and one JSON line last on stdout.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readRuleFiles } from '../../rules/engine/files.ts';
import { loadRules, RuleEngine } from '../../rules/engine/index.ts';
import { makeEvents } from './events.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    corpus: { type: 'string', default: new URL('../../../shared/corpus/sigma/rules', import.meta.url).pathname },
    rounds: { type: 'string', default: '7' },
  },
});
const EVENTS = Number(values.events);
const ROUNDS = Number(values.rounds);
const PACKS = new URL('../../rules/packs', import.meta.url).pathname;

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

function median(samples: number[]): number {
  const sorted = samples.toSorted((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

const paths = [values.corpus, ...(existsSync(PACKS) ? [PACKS] : [])];
const read = readRuleFiles(paths);
const loaded = loadRules(read.sources);
say(`loaded ${loaded.rules.length} rules and ${loaded.correlations.length} correlations from ${read.sources.length} files (${loaded.errors.length} not loaded)`);
// Building an engine builds the literal automata, whose sizes are worth knowing.
const warm = new RuleEngine(loaded);
const automata = [...loaded.literals.values()].flatMap((index) => index.stats());
say(`${warm.rules.length} rules routed; literal index: ${automata.length} fields, ${automata.reduce((n, a) => n + a.tests, 0)} tests, ${automata.reduce((n, a) => n + a.states, 0)} states; largest: ${automata.toSorted((a, b) => b.states - a.states).slice(0, 4).map((a) => `${JSON.stringify(a.field)} ${a.states}×${a.classes}`).join(', ')}`);
const events = makeEvents(EVENTS);
const lines = events.map((e) => JSON.stringify(e));

// Warm-up, not counted: the agent is a long-running process, so what matters is its steady state once
// the JIT has compiled the hot paths (the first pass over 100,000 events runs ~2× slower).
{
  const warmUp = new RuleEngine(loaded);
  for (const event of events) warmUp.evaluate(event);
  for (const line of lines) JSON.parse(line);
}

// The engine and JSON.parse take turns on blocks of 1,000 events, so both meet the same machine: on
// this VM, memory speed drifts by ±30% over seconds, which separate passes would each catch differently.
const BLOCK = 1_000;
const engineRates: number[] = [];
const parseRates: number[] = [];
let alerts = 0;
for (let round = 0; round < ROUNDS; round++) {
  const engine = new RuleEngine(loaded);
  let engineNs = 0n;
  let parseNs = 0n;
  let parsed = 0;
  alerts = 0;
  for (let start = 0; start < EVENTS; start += BLOCK) {
    const end = Math.min(start + BLOCK, EVENTS);
    const began = process.hrtime.bigint();
    for (let i = start; i < end; i++) alerts += engine.evaluate(events[i]!).length;
    const middle = process.hrtime.bigint();
    for (let i = start; i < end; i++) parsed += (JSON.parse(lines[i]!) as { fields: object }).fields ? 1 : 0;
    parseNs += process.hrtime.bigint() - middle;
    engineNs += middle - began;
  }
  engineRates.push(EVENTS / (Number(engineNs) / 1e9));
  parseRates.push(parsed / (Number(parseNs) / 1e9));
  say(`round ${round + 1}: ${Math.round(engineRates.at(-1)!)} events/s through the engine (${alerts} alerts), ${Math.round(parseRates.at(-1)!)} JSON.parse/s`);
}
process.stdout.write(`${JSON.stringify({
  rules: loaded.rules.length + loaded.correlations.length,
  events: EVENTS,
  eventsPerSec: Math.round(median(engineRates)),
  jsonParsePerSec: Math.round(median(parseRates)),
})}\n`);
