import type { Document, LineCounter } from 'yaml';
import { KIND } from '../api/modelcanary.ts';
import { checkKind, checkModelCanary, type Problem } from '../api/validate.ts';
import { EXIT, type Io } from './io.ts';
import { parseCommand } from './args.ts';
import { expandDirectories, isRecord, readYamlFile } from './files.ts';

const USAGE = `Usage: modelcanary validate [-o text|json] FILE|DIR...

Checks every ModelCanary in the given YAML files: several documents per file, a kind: List,
- for standard input, and directories, whose *.yaml and *.yml files are checked recursively in
sorted order (hidden entries and node_modules left out). Documents of other kinds (Service,
VirtualService, ...) are skipped. A kind that is a misspelling of ModelCanary, another kind of
modelcanary.io, or a ModelCanary with an apiVersion other than modelcanary.io/v1alpha1 is an
error. A document that is not a Kubernetes object is an error in a file you name, and skipped
in a file found in a directory (Helm values, scenario files).

Options:
  -o, --output FORMAT   text (default), or json: one JSON object for CI with the files checked,
                        the number of documents, the counts (valid, invalid, skipped,
                        unreadable) and every error with its file, document (from 1), kind,
                        name, field path, line and message; --json is the same
  -h, --help            show this help

Exit status: 0 all valid, 1 a ModelCanary is invalid, 2 bad usage, or a file cannot be read,
is not YAML, or is refused as hostile (over 4 MiB, nested over 100 levels, a YAML alias bomb).
`;

/** One problem, as -o json reports it; null where it does not apply (a file that cannot be read has no document). */
interface Finding {
  file: string;
  document: number | null;
  kind: string | null;
  name: string | null;
  path: string | null;
  line: number | null;
  message: string;
}

interface Report {
  files: string[];
  documents: number;
  valid: number;
  invalid: number;
  skipped: number;
  unreadable: number;
  errors: Finding[];
}

/** Where the lines of the text report go; nowhere for -o json, which prints the report at the end. */
interface Out {
  line(text: string): void;
  problem(text: string): void;
}

export async function runValidate(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand('validate', args, { output: { type: 'string', short: 'o' }, json: { type: 'boolean' } }, USAGE, io);
  if (typeof parsed === 'number') return parsed;
  const format = parsed.values.json === true ? 'json' : (parsed.values.output ?? 'text');
  if (format !== 'text' && format !== 'json') {
    io.stderr.write(`modelcanary validate: -o must be text or json, not ${format}; see modelcanary validate --help\n`);
    return EXIT.unreadable;
  }
  if (parsed.positionals.length === 0) {
    io.stderr.write('modelcanary validate: name at least one file or directory (- reads standard input); see modelcanary validate --help\n');
    return EXIT.unreadable;
  }
  const named = new Set(parsed.positionals);
  const files = await expandDirectories(parsed.positionals, io.cwd);
  const report: Report = { files, documents: 0, valid: 0, invalid: 0, skipped: 0, unreadable: 0, errors: [] };
  const out: Out =
    format === 'text'
      ? { line: (text) => void io.stdout.write(`${text}\n`), problem: (text) => void io.stderr.write(`${text}\n`) }
      : { line: () => undefined, problem: () => undefined };
  for (const file of files) await validateFile(file, named.has(file), io, report, out);

  const code = report.unreadable > 0 ? EXIT.unreadable : report.invalid > 0 ? EXIT.invalid : EXIT.ok;
  if (format === 'json') {
    io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return code;
  }
  const checked = report.valid + report.invalid;
  const errors = report.errors.filter((e) => e.document !== null).length;
  const problems = errors === 1 ? '1 problem' : `${errors} problems`;
  const summary =
    checked === 0
      ? `no ${KIND} found${report.skipped === 0 ? '' : ` (${report.skipped} ${report.skipped === 1 ? 'document' : 'documents'} of other kinds skipped)`}`
      : report.invalid === 0
        ? `${checked} ${plural(checked)} valid`
        : `${checked} ${plural(checked)} checked: ${report.valid} valid, ${report.invalid} invalid (${problems})`;
  io.stdout.write(`${summary}${report.unreadable > 0 ? `; ${report.unreadable} file(s) could not be read` : ''}\n`);
  return code;
}

function plural(n: number): string {
  return n === 1 ? KIND : `${KIND.slice(0, -1)}ies`;
}

async function validateFile(file: string, named: boolean, io: Io, report: Report, out: Out): Promise<void> {
  const read = await readYamlFile(file, io);
  if (!read.ok) {
    for (const message of read.messages) {
      out.problem(message);
      report.errors.push(unreadableFinding(file, message));
    }
    report.unreadable++;
    return;
  }
  for (const [index, document] of read.documents.entries()) {
    for (const { object, prefix } of objectsIn(read.values[index])) {
      const place = { file, index, named, lines: read.lines, locate: (segments: (string | number)[]) => offsetOf(document, [...prefix, ...segments]) };
      judge(place, object, report, out);
    }
  }
}

/** A reader's message (`FILE: cannot read: …`, `FILE:LINE:COL: not valid YAML: …`) as a finding. */
function unreadableFinding(file: string, message: string): Finding {
  const rest = message.startsWith(file) ? message.slice(file.length) : `: ${message}`;
  const at = /^:(\d+):\d+: (.*)$/s.exec(rest);
  return { file, document: null, kind: null, name: null, path: null, line: at === null ? null : Number(at[1]), message: at === null ? rest.replace(/^: /, '') : (at[2] ?? '') };
}

/** A `kind: List` (as kubectl get -o yaml prints) holds its objects in items. */
function objectsIn(value: unknown): { object: unknown; prefix: (string | number)[] }[] {
  if (value === null || value === undefined) return [];
  if (isRecord(value) && (value.kind === 'List' || value.kind === `${KIND}List`) && Array.isArray(value.items)) {
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

interface Place {
  file: string;
  /** The document's position in the file, from 0. */
  index: number;
  /** Named on the command line, rather than found in a directory. */
  named: boolean;
  lines: LineCounter;
  locate: (segments: (string | number)[]) => number;
}

function judge(place: Place, object: unknown, report: Report, out: Out): void {
  const { file, index } = place;
  report.documents++;
  if (!isRecord(object) || typeof object.kind !== 'string') {
    if (!place.named) {
      out.line(`${file}: document ${index + 1}: skipped: not a Kubernetes object`);
      report.skipped++;
      return;
    }
    const message = 'not a Kubernetes object: expected a mapping with apiVersion, kind and metadata';
    out.line(`${file}: document ${index + 1}: ${message}`);
    report.invalid++;
    report.errors.push({ file, document: index + 1, kind: null, name: null, path: null, line: place.lines.linePos(place.locate([])).line, message });
    return;
  }
  const name = isRecord(object.metadata) && typeof object.metadata.name === 'string' ? object.metadata.name : undefined;
  const label = `${file}: ${object.kind}/${name ?? `(document ${index + 1})`}`;
  const finding = (problem: Problem): Finding => ({
    file,
    document: index + 1,
    kind: String(object.kind),
    name: name ?? null,
    path: problem.path,
    line: place.lines.linePos(place.locate(problem.segments)).line,
    message: problem.message,
  });
  const kind = checkKind(object.apiVersion, object.kind);
  if (kind.is === 'other') {
    out.line(`${label}: skipped: not a ${KIND}`);
    report.skipped++;
    return;
  }
  const result = kind.is === 'mistaken' ? { ok: false as const, problems: [kind.problem] } : checkModelCanary(object);
  if (result.ok) {
    out.line(`${label}: valid`);
    report.valid++;
    return;
  }
  report.invalid++;
  for (const problem of inDocumentOrder(result.problems, place.locate)) {
    out.line(`${label}: ${problem.path}: ${problem.message}`);
    report.errors.push(finding(problem));
  }
}

/** People fix a manifest from the top down, so problems are listed in the order of the text. */
function inDocumentOrder(problems: Problem[], locate: (segments: (string | number)[]) => number): Problem[] {
  return problems
    .map((problem) => ({ problem, offset: locate(problem.segments) }))
    .sort((a, b) => a.offset - b.offset)
    .map(({ problem }) => problem);
}
