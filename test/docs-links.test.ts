import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { CONDITION_TYPES, NOTIFICATION_KINDS, PHASES } from '../src/api/status.ts';
import { ROOT } from './helpers/manifests.ts';

// The docs are only worth reading while they are true. Two things are checked here: every
// relative link of README.md and docs/*.md reaches a file of the repository (and, for a
// #anchor into a markdown file, one of its headings, slugged as GitHub does), and
// docs/status-reference.md names every phase, condition type and reason, event reason and
// notification kind the code can write, each in its own section.

const root = fileURLToPath(ROOT);

// ── Links ────────────────────────────────────────────────────────────────────────────

interface Link {
  line: number;
  target: string;
}

/** The lines of a markdown file outside fenced code blocks, with their numbers, inline code removed. */
function proseLines(text: string): { line: number; text: string; raw: string }[] {
  const out: { line: number; text: string; raw: string }[] = [];
  let fence: string | undefined;
  for (const [index, raw] of text.split('\n').entries()) {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(raw)?.[1];
    if (marker !== undefined) {
      if (fence === undefined) fence = marker;
      else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    out.push({ line: index + 1, text: raw.replace(/(`+)[^`]*?\1/g, ''), raw });
  }
  return out;
}

/** Inline links and images, reference definitions and HTML href/src, as written. */
export function linksOf(text: string): Link[] {
  const links: Link[] = [];
  for (const { line, text: prose } of proseLines(text)) {
    for (const match of prose.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)/g)) links.push({ line, target: (match[1] ?? '').replace(/^<|>$/g, '') });
    const definition = /^\s{0,3}\[[^\]]+\]:\s*(\S+)/.exec(prose);
    if (definition?.[1] !== undefined) links.push({ line, target: definition[1].replace(/^<|>$/g, '') });
    for (const match of prose.matchAll(/\s(?:href|src)="([^"]+)"/g)) links.push({ line, target: match[1] ?? '' });
  }
  return links;
}

/** GitHub's anchor for a heading: its text as rendered, lower-cased, punctuation dropped, spaces as hyphens. */
export function slugOf(heading: string): string {
  const rendered = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '');
  return rendered
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a markdown file offers: its headings' slugs (repeats numbered as GitHub does) and explicit ids. */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text: prose, raw } of proseLines(text)) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(raw)?.[1];
    if (heading !== undefined) {
      const slug = slugOf(heading);
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      anchors.add(count === 0 ? slug : `${slug}-${count}`);
    }
    for (const match of prose.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(match[1] ?? '');
  }
  return anchors;
}

/** What is wrong with one link of `file` (a path relative to the repository), or undefined. */
export function checkLink(file: string, target: string, read: (relative: string) => string | undefined): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return undefined;
  const hash = target.indexOf('#');
  const pathPart = hash < 0 ? target : target.slice(0, hash);
  const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const resolved = pathPart === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), decodeURIComponent(pathPart)));
  if (resolved.startsWith('../') || path.posix.isAbsolute(resolved)) return `points outside the repository (${resolved})`;
  const relative = resolved.replace(/\/$/, '');
  if (!isDir(relative) && read(relative) === undefined) return `no such file: ${relative}`;
  if (anchor === undefined || anchor === '' || !relative.endsWith('.md')) return undefined;
  const text = read(relative) ?? '';
  return anchorsOf(text).has(anchor) ? undefined : `no heading in ${relative} has the anchor #${anchor}`;
}

/** A folder of the repository (examples/, dashboards/): GitHub shows its listing. */
function isDir(relative: string): boolean {
  return existsSync(path.join(root, relative)) && statSync(path.join(root, relative)).isDirectory();
}

function readRepo(relative: string): string | undefined {
  try {
    return readFileSync(path.join(root, relative), 'utf8');
  } catch {
    return undefined;
  }
}

const DOCS = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

test('docs: every relative link of README.md and docs/*.md reaches a file, and every #anchor a heading', () => {
  const problems: string[] = [];
  let checked = 0;
  for (const file of DOCS) {
    for (const link of linksOf(readRepo(file) ?? '')) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) continue;
      checked++;
      const problem = checkLink(file, link.target, readRepo);
      if (problem !== undefined) problems.push(`${file}:${link.line}: (${link.target}): ${problem}`);
    }
  }
  // A checker that finds no links proves nothing: the README alone links a dozen files.
  assert.ok(checked >= 30, `only ${checked} relative links found in ${DOCS.join(', ')}: is the link pattern broken?`);
  assert.deepEqual(problems, [], `dead links:\n${problems.join('\n')}`);
});

test('docs: every docs page is linked from the README', () => {
  const readme = new Set(linksOf(readRepo('README.md') ?? '').map((l) => l.target.split('#')[0]));
  const unlinked = DOCS.filter((f) => f.startsWith('docs/') && !readme.has(f));
  assert.deepEqual(unlinked, [], `docs pages the README does not link: ${unlinked.join(', ')}`);
});

const linkCases: { name: string; file: string; target: string; files: Record<string, string>; problem: RegExp | undefined }[] = [
  { name: 'a file that exists', file: 'README.md', target: 'docs/a.md', files: { 'docs/a.md': '# A\n' }, problem: undefined },
  { name: 'a file that does not', file: 'README.md', target: 'DESIGN.md', files: {}, problem: /no such file: DESIGN\.md/ },
  { name: 'relative to the linking file', file: 'docs/a.md', target: '../README.md', files: { 'README.md': '' }, problem: undefined },
  { name: 'outside the repository', file: 'docs/a.md', target: '../../x.md', files: {}, problem: /outside the repository/ },
  { name: 'an anchor that exists', file: 'README.md', target: 'docs/a.md#how-it-decides-when-prometheus-is-down', files: { 'docs/a.md': '## How it decides, when Prometheus is down\n' }, problem: undefined },
  { name: 'an anchor with code and a repeat', file: 'README.md', target: 'docs/a.md#modelcanary-run-1', files: { 'docs/a.md': '## `modelcanary run`\n## modelcanary run\n' }, problem: undefined },
  { name: 'an anchor that does not exist', file: 'README.md', target: 'docs/a.md#nowhere', files: { 'docs/a.md': '# A\n' }, problem: /no heading in docs\/a\.md has the anchor #nowhere/ },
  { name: 'an anchor in the same file', file: 'docs/a.md', target: '#b', files: { 'docs/a.md': '# A\n## B\n' }, problem: undefined },
  { name: 'a heading inside a code fence is no anchor', file: 'docs/a.md', target: '#b', files: { 'docs/a.md': '```\n## B\n```\n' }, problem: /anchor #b/ },
];

for (const c of linkCases) {
  test(`docs link checker: ${c.name}`, () => {
    assert.match(checkLink(c.file, c.target, (f) => c.files[f]) ?? 'fine', c.problem ?? /^fine$/);
  });
}

test('docs link checker: links inside code are not links, and every line is named', () => {
  const links = linksOf('[a](one.md)\n\n```\n[b](two.md)\n```\nsee `[c](three.md)` and ![d](four.svg "title")\n[e]: five.md\n<img src="six.png">\n');
  assert.deepEqual(links, [
    { line: 1, target: 'one.md' },
    { line: 6, target: 'four.svg' },
    { line: 7, target: 'five.md' },
    { line: 8, target: 'six.png' },
  ]);
});

// ── What the code writes, and docs/status-reference.md ────────────────────────────────

interface Written {
  /** Condition type → the reasons the code sets it with. */
  conditions: Map<string, Set<string>>;
  eventReasons: Set<string>;
  /** Where a reason is computed in a way this test cannot read: it must be taught. */
  unreadable: string[];
}

const CAMEL = /^[A-Z][A-Za-z]+$/;

/** The string literals an expression can evaluate to (through ?: and ??), or undefined when it is something else. */
function literalsOf(node: ts.Expression): string[] | undefined {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return [node.text];
  if (ts.isParenthesizedExpression(node)) return literalsOf(node.expression);
  if (ts.isConditionalExpression(node)) {
    const a = literalsOf(node.whenTrue);
    const b = literalsOf(node.whenFalse);
    return a === undefined || b === undefined ? undefined : [...a, ...b];
  }
  return undefined;
}

// Reasons that are passed on rather than written: each is written as a literal elsewhere, where
// the rules below find it (tell(reason) in hold: the {type, reason} objects; in finalize: the
// [reason, message] tuples; in setPhase: its calls; event[0]: the events table; held.reason: gateCondition).
const PASSED_ON = new Set(['reason', 'event[0]', 'held.reason', 'type']);

function scan(files: string[]): Written {
  const written: Written = { conditions: new Map(), eventReasons: new Set(), unreadable: [] };
  const addCondition = (type: string, reasons: readonly string[]): void => {
    const set = written.conditions.get(type) ?? new Set<string>();
    for (const r of reasons) set.add(r);
    written.conditions.set(type, set);
  };
  for (const file of files) {
    const source = ts.createSourceFile(file, readRepo(file) ?? '', ts.ScriptTarget.Latest, true);
    const where = (node: ts.Node): string => `${file}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    const reasonIn = (node: ts.Expression | undefined, into: (reasons: string[]) => void): void => {
      if (node === undefined) return;
      const literals = literalsOf(node);
      if (literals !== undefined) into(literals);
      else if (!PASSED_ON.has(node.getText(source))) written.unreadable.push(`${where(node)}: ${node.getText(source)}`);
    };
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node)) {
        const callee = node.expression;
        const name = ts.isIdentifier(callee) ? callee.text : ts.isPropertyAccessExpression(callee) ? callee.name.text : '';
        const args = node.arguments;
        // tell(ctx, 'Normal' | 'Warning', reason, message), and the recorder it calls.
        if ((name === 'tell' || name === 'record') && args.length >= 4) reasonIn(args[2], (r) => { for (const x of r) written.eventReasons.add(x); });
        // setPhase(ctx, canary, phase, message, reason): the event it tells.
        if (name === 'setPhase' && args.length >= 5) reasonIn(args[4], (r) => { for (const x of r) written.eventReasons.add(x); });
        // condition(ctx, conditions, type, status, reason, message), and rollout-status's set(type, status, reason, message).
        const typeAt = name === 'condition' ? 2 : name === 'set' ? 0 : -1;
        if (typeAt >= 0 && args.length >= typeAt + 4) {
          const types = literalsOf(args[typeAt] as ts.Expression);
          if (types === undefined && PASSED_ON.has((args[typeAt] as ts.Expression).getText(source))) return ts.forEachChild(node, visit);
          if (types === undefined) written.unreadable.push(`${where(node)}: the type of ${node.getText(source).slice(0, 80)}`);
          else for (const type of types) reasonIn(args[typeAt + 2], (r) => { addCondition(type, r); });
        }
      }
      // {type: 'Preflight', reason: 'SubsetMissing', message}: a condition, and the event hold() tells with it.
      if (ts.isObjectLiteralExpression(node)) {
        const property = (key: string): ts.Expression | undefined => {
          const found = node.properties.find((p) => ts.isPropertyAssignment(p) && p.name.getText(source) === key);
          return found !== undefined && ts.isPropertyAssignment(found) ? found.initializer : undefined;
        };
        const type = property('type');
        const reason = property('reason');
        const types = type === undefined ? undefined : literalsOf(type);
        if (types !== undefined && types.every((t) => (CONDITION_TYPES as readonly string[]).includes(t)) && reason !== undefined) {
          reasonIn(reason, (r) => {
            for (const t of types) addCondition(t, r);
            for (const x of r) written.eventReasons.add(x);
          });
        }
      }
      // ['StepAdvanced', 'Normal'] in the events table, ['RouteKept', `deleted after …`] in finalize.
      if (ts.isArrayLiteralExpression(node) && node.elements.length === 2) {
        const [first, second] = node.elements;
        const literal = first === undefined ? undefined : literalsOf(first);
        // The second is an event type or a message; ['Succeeded', 'RolledBack'] is a list of phases.
        const paired = second !== undefined && (ts.isTemplateExpression(second) || ['Normal', 'Warning'].includes(literalsOf(second)?.[0] ?? '') || (ts.isStringLiteral(second) && !CAMEL.test(second.text)));
        if (paired && literal?.length === 1 && CAMEL.test(literal[0] ?? '')) written.eventReasons.add(literal[0] ?? '');
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return written;
}

const CONTROLLER = readdirSync(path.join(root, 'src/controller'))
  .filter((f) => f.endsWith('.ts'))
  .sort()
  .map((f) => `src/controller/${f}`);

/** The body of one `## Heading` section of a markdown text, up to the next `## `. */
function section(text: string, heading: string): string {
  const start = text.search(new RegExp(`^## ${heading}\\b`, 'm'));
  if (start < 0) return '';
  const rest = text.slice(start + 3);
  const end = rest.search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end);
}

function missingFrom(text: string, names: Iterable<string>): string[] {
  return [...names].filter((name) => !text.includes(`\`${name}\``)).sort();
}

test('docs: the code-reading rules find what the controller writes (and nothing they cannot read)', () => {
  const written = scan(CONTROLLER);
  assert.deepEqual(written.unreadable, [], 'reasons computed in a way this test cannot read: teach scan() in test/docs-links.test.ts, or write them as literals');
  for (const reason of ['RolloutStarted', 'StepAdvanced', 'Promoted', 'RolledBack', 'StableNotServing', 'SubsetMissing', 'RouteRestored', 'RouteKept', 'WebhookFailed', 'Paused', 'NoEvidence']) {
    assert.ok(written.eventReasons.has(reason), `event reason ${reason} not found in ${CONTROLLER.join(', ')}`);
  }
  const expected: [string, string][] = [
    ['Preflight', 'SubsetMissing'],
    ['Preflight', 'Passed'],
    ['MetricsAvailable', 'NoEvidence'],
    ['Progressing', 'WaitingForSlot'],
    ['RoutingReady', 'RouteClaimed'],
    ['Notified', 'NotDelivered'],
    ['GateOpen', 'TimedOut'],
  ];
  for (const [type, reason] of expected) assert.ok(written.conditions.get(type)?.has(reason) === true, `condition ${type} with reason ${reason} not found`);
  for (const type of written.conditions.keys()) assert.ok((CONDITION_TYPES as readonly string[]).includes(type), `condition type ${type} is written but not in CONDITION_TYPES (src/api/status.ts)`);
  assert.ok(PHASES.includes('Progressing') && PHASES.includes('RolledBack'));
  assert.ok(NOTIFICATION_KINDS.includes('rolledBack'));
});

test('docs: docs/status-reference.md names every phase, condition and reason, event reason and notification kind', () => {
  const doc = readRepo('docs/status-reference.md') ?? '';
  const written = scan(CONTROLLER);
  const reasons = [...written.conditions.values()].flatMap((s) => [...s]);
  const sections: [string, Iterable<string>][] = [
    ['Phases', PHASES],
    ['Conditions', [...CONDITION_TYPES, ...reasons]],
    ['Events', written.eventReasons],
    ['Notifications', NOTIFICATION_KINDS],
  ];
  const problems = sections.flatMap(([heading, names]) => {
    const body = section(doc, heading);
    if (body === '') return [`no "## ${heading}" section`];
    const missing = missingFrom(body, names);
    return missing.length === 0 ? [] : [`## ${heading} does not name ${missing.map((m) => `\`${m}\``).join(', ')}`];
  });
  assert.deepEqual(problems, [], 'docs/status-reference.md is behind the code: add what is missing, with what it means and what to do');
});
