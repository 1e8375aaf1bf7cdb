import type { Document } from 'yaml';
import { KIND } from '../api/modelcanary.ts';
import { checkModelCanary, type Problem } from '../api/validate.ts';
import { EXIT, type Io } from './io.ts';
import { parseCommand } from './args.ts';
import { isRecord, readYamlFile } from './files.ts';

const USAGE = `Usage: modelcanary validate FILE...

Checks every ModelCanary in the given YAML files (several documents per file are fine;
- reads standard input). Documents of other kinds are skipped.
Exit status: 0 all valid, 1 a ModelCanary is invalid, 2 a file cannot be read, is not YAML,
or is refused as hostile (over 4 MiB, nested over 100 levels, a YAML alias bomb).
`;

interface Tally {
  valid: number;
  invalid: number;
  problems: number;
  unreadable: number;
}

export async function runValidate(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand('validate', args, {}, USAGE, io);
  if (typeof parsed === 'number') return parsed;
  if (parsed.positionals.length === 0) {
    io.stderr.write(`modelcanary validate: name at least one file\n\n${USAGE}`);
    return EXIT.unreadable;
  }
  const tally: Tally = { valid: 0, invalid: 0, problems: 0, unreadable: 0 };
  for (const file of parsed.positionals) await validateFile(file, io, tally);

  const checked = tally.valid + tally.invalid;
  const noun = checked === 1 ? KIND : `${KIND.slice(0, -1)}ies`;
  const problems = tally.problems === 1 ? '1 problem' : `${tally.problems} problems`;
  const summary = tally.invalid === 0 ? `${checked} ${noun} valid` : `${checked} ${noun} checked: ${tally.valid} valid, ${tally.invalid} invalid (${problems})`;
  io.stdout.write(`${summary}${tally.unreadable > 0 ? `; ${tally.unreadable} file(s) could not be read` : ''}\n`);
  if (tally.unreadable > 0) return EXIT.unreadable;
  return tally.invalid > 0 ? EXIT.invalid : EXIT.ok;
}

async function validateFile(file: string, io: Io, tally: Tally): Promise<void> {
  const read = await readYamlFile(file, io);
  if (!read.ok) {
    for (const message of read.messages) io.stderr.write(`${message}\n`);
    tally.unreadable++;
    return;
  }
  for (const [index, document] of read.documents.entries()) {
    for (const { object, prefix } of objectsIn(read.values[index])) {
      report(file, index, object, io, tally, (segments) => offsetOf(document, [...prefix, ...segments]));
    }
  }
}

/** A `kind: List` (as kubectl get -o yaml prints) holds its objects in items. */
function objectsIn(value: unknown): { object: unknown; prefix: (string | number)[] }[] {
  if (value === null || value === undefined) return [];
  if (isRecord(value) && value.kind === 'List' && Array.isArray(value.items)) {
    return value.items.map((object: unknown, i) => ({ object, prefix: ['items', i] }));
  }
  return [{ object: value, prefix: [] }];
}

/** Where a field (or, when it is missing, its nearest present parent) starts in the text. */
function offsetOf(document: Document, segments: (string | number)[]): number {
  for (let depth = segments.length; depth >= 0; depth--) {
    const node: unknown = document.getIn(segments.slice(0, depth), true);
    if (isRecord(node) && Array.isArray(node.range) && typeof node.range[0] === 'number') return node.range[0];
  }
  return 0;
}

function report(file: string, index: number, object: unknown, io: Io, tally: Tally, locate: (segments: (string | number)[]) => number): void {
  if (!isRecord(object) || typeof object.kind !== 'string') {
    io.stdout.write(`${file}: document ${index + 1}: not a Kubernetes object: expected a mapping with apiVersion, kind and metadata\n`);
    tally.invalid++;
    tally.problems++;
    return;
  }
  const name = isRecord(object.metadata) && typeof object.metadata.name === 'string' ? object.metadata.name : `(document ${index + 1})`;
  const label = `${file}: ${object.kind}/${name}`;
  if (object.kind !== KIND) {
    io.stdout.write(`${label}: skipped: not a ${KIND}\n`);
    return;
  }
  const result = checkModelCanary(object);
  if (result.ok) {
    io.stdout.write(`${label}: valid\n`);
    tally.valid++;
    return;
  }
  tally.invalid++;
  tally.problems += result.problems.length;
  for (const problem of inDocumentOrder(result.problems, locate)) io.stdout.write(`${label}: ${problem.path}: ${problem.message}\n`);
}

/** People fix a manifest from the top down, so problems are listed in the order of the text. */
function inDocumentOrder(problems: Problem[], locate: (segments: (string | number)[]) => number): Problem[] {
  return problems
    .map((problem) => ({ problem, offset: locate(problem.segments) }))
    .sort((a, b) => a.offset - b.offset)
    .map(({ problem }) => problem);
}
