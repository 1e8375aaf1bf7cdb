import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { KIND } from '../api/modelcanary.ts';
import { Scenario } from '../api/scenario.ts';
import { checkAgainst, checkModelCanary, type Problem } from '../api/validate.ts';
import { formatDuration } from '../api/duration.ts';
import { simulate, type SimulationResult } from '../analysis/simulator.ts';
import { intervalText } from '../analysis/verdicts.ts';
import { renderChart } from './chart.ts';
import { isRecord, readYamlFile } from './files.ts';
import { EXIT, type Io } from './io.ts';
import { parseCommand } from './args.ts';

const USAGE = `Usage: modelcanary simulate --canary FILE --scenario FILE [--seed N] [--json] [--svg OUT]

Runs the analysis engine against two simulated model versions in virtual time, with the
ModelCanary's analysis settings, and shows every check and decision.
Exit status: 0 when it ran (whatever the outcome), 1 on an invalid canary or scenario,
2 when a file cannot be read or is not YAML.
`;

export async function runSimulate(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand(
    'simulate',
    args,
    {
      canary: { type: 'string' },
      scenario: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      svg: { type: 'string' },
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.canary === undefined || values.scenario === undefined) {
    io.stderr.write(`modelcanary simulate: --canary and --scenario are required\n\n${USAGE}`);
    return EXIT.unreadable;
  }
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
    io.stderr.write(`modelcanary simulate: --seed must be a whole number from 0 to 4294967295, not ${values.seed ?? ''}\n`);
    return EXIT.unreadable;
  }

  const canaryFile = await readYamlFile(values.canary, io);
  const scenarioFile = await readYamlFile(values.scenario, io);
  for (const file of [canaryFile, scenarioFile]) if (!file.ok) io.stderr.write(`${file.messages.join('\n')}\n`);
  if (!canaryFile.ok || !scenarioFile.ok) return EXIT.unreadable;

  const canaryDocument = canaryFile.documents.map((d) => d.toJS() as unknown).find((d) => isRecord(d) && d.kind === KIND);
  if (canaryDocument === undefined) {
    io.stderr.write(`${values.canary}: no ${KIND} in this file\n`);
    return EXIT.invalid;
  }
  const canary = checkModelCanary(canaryDocument);
  const scenario = checkAgainst(Scenario, scenarioFile.documents[0]?.toJS() ?? null);
  if (!canary.ok) printProblems(io, values.canary, canary.problems);
  if (!scenario.ok) printProblems(io, values.scenario, scenario.problems);
  if (!canary.ok || !scenario.ok) return EXIT.invalid;

  const result = simulate(canary.value.spec, scenario.value, seed === undefined ? {} : { seed });
  if (values.svg !== undefined) await writeFile(resolve(io.cwd, values.svg), renderChart(result));
  io.stdout.write(values.json === true ? `${JSON.stringify(result, null, 2)}\n` : timeline(result, `${canary.value.metadata.namespace ?? 'default'}/${canary.value.metadata.name}`));
  return EXIT.ok;
}

function printProblems(io: Io, file: string, problems: Problem[]): void {
  for (const p of problems) io.stderr.write(`${file}: ${p.path}: ${p.message}\n`);
}

const OUTCOME_WORDS = { promoted: 'promoted', rolledBack: 'rolled back', timeout: 'no decision (time limit)' } as const;

function timeline(result: SimulationResult, name: string): string {
  const lines = [`scenario ${result.scenario} · seed ${result.seed} · ${KIND} ${name}`];
  if (result.skippedMetrics.length > 0) lines.push(`not simulated (custom PromQL, outlier ejections, LLM presets without the scenario's ttftMs or interTokenMs): ${result.skippedMetrics.join(', ')}`);
  lines.push('', '    time  weight  action    reason');
  const indent = ' '.repeat(28);
  for (const entry of result.timeline) {
    lines.push(`${clock(entry.atSeconds).padStart(8)}  ${`${entry.weight} %`.padStart(6)}  ${entry.action.padEnd(8)}  ${entry.reason}`);
    // The bounds behind each verdict: why a check passed, failed or could not tell yet.
    for (const verdict of entry.verdicts) {
      const bounds = intervalText(verdict);
      const warning = verdict.warning === undefined ? '' : ' · stable breaks this bound too';
      lines.push(`${indent}${verdict.name} ${verdict.verdict}${bounds === undefined ? '' : `: ${bounds}`}${warning}`);
    }
  }
  const { requests, errors } = result;
  lines.push(
    '',
    `outcome: ${OUTCOME_WORDS[result.outcome]} at ${clock(result.endedAtSeconds)}, canary weight ${result.finalWeight} %`,
    `requests: stable ${requests.stable}, canary ${requests.canary}; 5xx: stable ${errors.stable}, canary ${errors.canary} (${result.excessCanaryErrors.toFixed(1)} beyond stable's rate)`,
  );
  return `${lines.join('\n')}\n`;
}

function clock(seconds: number): string {
  return formatDuration(seconds * 1000);
}
