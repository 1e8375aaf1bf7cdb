import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Composer, isScalar, Lexer, LineCounter, Parser, visit, type CST, type Document } from 'yaml';
import { describeError, errorCode, type Io } from './io.ts';

/**
 * What reading one manifest file may cost. A ModelCanary is a few KiB nested about ten levels
 * deep and Kubernetes stores no object over 1.5 MiB, so these refuse only hostile files: a huge
 * file, nesting that would overflow the stack (yaml composes and converts recursively), and
 * alias bombs (billion laughs: a few lines whose aliases expand to gigabytes). Both alias limits
 * are needed: expansions bound the bomb, and the number of aliases bounds yaml's alias lookup,
 * which scans every anchor once per alias.
 */
export const YAML_LIMITS = { bytes: 4 * 1024 * 1024, depth: 100, aliases: 100, aliasExpansions: 100 } as const;

export type YamlFile = { ok: true; documents: Document[]; values: unknown[]; lines: LineCounter } | { ok: false; messages: string[] };

/**
 * Reads a file (- for standard input) and parses every YAML document in it (JSON is YAML),
 * with each document's value. Failures come back as messages ready to print: `FILE: cannot
 * read: no such file or directory`, `FILE:LINE:COL: not valid YAML: …` for each syntax error,
 * duplicate keys included, or `FILE: refused: …` naming the limit of YAML_LIMITS the file exceeds.
 */
export async function readYamlFile(file: string, io: Io): Promise<YamlFile> {
  let text: string | undefined;
  try {
    text = await readCapped(file === '-' ? io.stdin : createReadStream(resolve(io.cwd, file), { end: YAML_LIMITS.bytes }), YAML_LIMITS.bytes);
  } catch (error) {
    return { ok: false, messages: [`${file}: cannot read: ${readProblem(error)}`] };
  }
  if (text === undefined) return refused(file, `larger than ${YAML_LIMITS.bytes / 1024 / 1024} MiB`);

  const parsed = parse(text);
  if ('deepAtLine' in parsed) return refused(file, `nested deeper than ${YAML_LIMITS.depth} levels (line ${parsed.deepAtLine})`);
  const { documents, lines } = parsed;
  const problems = [...documents.flatMap((d) => d.errors.map((e) => ({ offset: e.pos[0], message: e.message }))), ...duplicateKeys(documents)];
  if (problems.length > 0) {
    return {
      ok: false,
      messages: problems
        .sort((a, b) => a.offset - b.offset)
        .map(({ offset, message }) => {
          const { line, col } = lines.linePos(offset);
          return `${file}:${line}:${col}: not valid YAML: ${message.split('\n')[0] ?? message}`;
        }),
    };
  }
  const aliases = documents.reduce((sum, d) => sum + aliasCount(d), 0);
  if (aliases > YAML_LIMITS.aliases) return refused(file, `more than ${YAML_LIMITS.aliases} aliases (a YAML alias bomb?)`);
  const values: unknown[] = [];
  for (const document of documents) {
    const value = valueOf(document);
    if (!value.ok) return { ok: false, messages: [`${file}: ${value.problem}`] };
    values.push(value.value);
  }
  return { ok: true, documents, values, lines };
}

/** Why a file cannot be read, in words, with the fix when there is an obvious one. */
export function readProblem(error: unknown): string {
  switch (errorCode(error)) {
    case 'ENOENT':
      return 'no such file (check the path)';
    case 'EISDIR':
      return 'it is a directory; name a file in it';
    default:
      return describeError(error);
  }
}

/**
 * The files a command was given, with each directory replaced by the YAML files (*.yaml,
 * *.yml) under it, recursively, in sorted order, as `kubectl apply -R -f DIR` finds them.
 * Hidden entries and node_modules are passed over, and symbolic links to directories are not
 * followed (no loops). A path that cannot be looked at is kept, for the reader to report.
 */
export async function expandDirectories(paths: readonly string[], cwd: string): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    if (path === '-') {
      files.push(path);
      continue;
    }
    const info = await stat(resolve(cwd, path)).catch(() => undefined);
    if (info?.isDirectory() === true) files.push(...(await yamlFilesUnder(path, cwd)));
    else files.push(path);
  }
  return files;
}

async function yamlFilesUnder(dir: string, cwd: string): Promise<string[]> {
  const entries = await readdir(resolve(cwd, dir), { withFileTypes: true });
  const found: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await yamlFilesUnder(path, cwd)));
    else if (/\.ya?ml$/i.test(entry.name) && (entry.isFile() || (entry.isSymbolicLink() && (await stat(resolve(cwd, path)).catch(() => undefined))?.isFile() === true))) found.push(path);
  }
  return found;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function refused(file: string, reason: string): YamlFile {
  return { ok: false, messages: [`${file}: refused: ${reason}`] };
}

/** The text of a stream, or undefined once it holds more than `limit` bytes: the rest is never read. */
async function readCapped(stream: AsyncIterable<string | Buffer>, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    size += bytes.length;
    if (size > limit) return undefined;
    chunks.push(bytes);
  }
  // Decoded once at the end, so that a character split between chunks survives.
  return Buffer.concat(chunks).toString('utf8');
}

const COLLECTIONS = new Set(['block-map', 'block-seq', 'flow-collection']);

/**
 * parseAllDocuments, in its parts (yaml's Lexer, Parser and Composer), so that nesting is
 * measured as the text is read: the Parser keeps the collections it is inside on a stack, and a
 * document goes to the Composer, which recurses per level, only once it is complete and known
 * to be shallow enough. Duplicate keys are checked afterwards in one pass: yaml's own check
 * compares each key with every earlier one, and a mapping of 100,000 keys then takes minutes.
 */
function parse(text: string): { documents: Document[]; lines: LineCounter } | { deepAtLine: number } {
  const lines = new LineCounter();
  const parser = new Parser(lines.addNewLine);
  let deepAt: number | undefined;
  function* tokens(): Generator<CST.Token> {
    lines.addNewLine(0);
    for (const lexeme of new Lexer().lex(text)) {
      yield* parser.next(lexeme);
      if (parser.stack.length > YAML_LIMITS.depth && parser.stack.filter((t) => COLLECTIONS.has(t.type)).length > YAML_LIMITS.depth) {
        deepAt = parser.offset;
        return;
      }
    }
    yield* parser.end();
  }
  const documents: Document[] = [...new Composer({ uniqueKeys: false }).compose(tokens())];
  return deepAt === undefined ? { documents, lines } : { deepAtLine: lines.linePos(deepAt).line };
}

/** Keys repeated in a mapping, as yaml reports them: equal scalar values. */
function duplicateKeys(documents: Document[]): { offset: number; message: string }[] {
  const found: { offset: number; message: string }[] = [];
  for (const document of documents) {
    visit(document, {
      Map(_key, map) {
        const seen = new Set<unknown>();
        for (const { key } of map.items) {
          if (!isScalar(key) || Number.isNaN(key.value)) continue;
          if (seen.has(key.value)) found.push({ offset: key.range?.[0] ?? 0, message: 'Map keys must be unique' });
          seen.add(key.value);
        }
      },
    });
  }
  return found;
}

function aliasCount(document: Document): number {
  let count = 0;
  visit(document, {
    Alias() {
      count++;
    },
  });
  return count;
}

/**
 * A document's value. Aliases can make a value deeper than its text: a chain that would
 * overflow the stack is caught, and the value is measured again.
 */
function valueOf(document: Document): { ok: true; value: unknown } | { ok: false; problem: string } {
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: YAML_LIMITS.aliasExpansions });
  } catch (error) {
    if (error instanceof RangeError) return { ok: false, problem: `refused: nested deeper than ${YAML_LIMITS.depth} levels (through aliases)` };
    if (error instanceof ReferenceError && error.message.startsWith('Excessive alias count')) {
      return { ok: false, problem: `refused: aliases expand to more than ${YAML_LIMITS.aliasExpansions} copies (a YAML alias bomb?)` };
    }
    // An alias to an anchor that is not set before it, for one.
    return { ok: false, problem: `not valid YAML: ${(error as Error).message}` };
  }
  if (depthOf(value) > YAML_LIMITS.depth) return { ok: false, problem: `refused: nested deeper than ${YAML_LIMITS.depth} levels (through aliases)` };
  return { ok: true, value };
}

/**
 * How many arrays and objects deep a value goes. Aliases share objects, so each object's
 * height is worked out once (post-order, on an explicit stack: no recursion to overflow).
 */
function depthOf(root: unknown): number {
  if (!isCollection(root)) return 0;
  const heights = new Map<object, number>();
  const onPath = new Set<object>();
  const stack: object[] = [root];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as object;
    if (heights.has(top)) {
      stack.pop();
      continue;
    }
    const children = Object.values(top).filter(isCollection);
    const pending = children.filter((child) => !heights.has(child));
    // YAML text cannot make a cycle; should one appear, it is infinitely deep.
    if (pending.some((child) => onPath.has(child))) return Infinity;
    if (pending.length > 0) {
      onPath.add(top);
      for (const child of pending) stack.push(child);
      continue;
    }
    let height = 0;
    for (const child of children) height = Math.max(height, heights.get(child) ?? 0);
    heights.set(top, height + 1);
    onPath.delete(top);
    stack.pop();
  }
  return heights.get(root) ?? 0;
}

function isCollection(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}
