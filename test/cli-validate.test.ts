import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { globSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, stringify } from 'yaml';
import { ROOT } from './helpers/manifests.ts';
import { modelcanary } from './helpers/cli.ts';
import { readYamlFile } from '../src/cli/files.ts';

const root = fileURLToPath(ROOT);

const scratch = mkdtempSync(join(tmpdir(), 'modelcanary-validate-'));
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});
function file(name: string, text: string | Buffer): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

const VALID = readFileSync(join(root, 'examples/fraud-detector-istio.yaml'), 'utf8');

test('validate exits 0 and names every ModelCanary of the examples', async () => {
  const run = await modelcanary(['validate', 'examples/fraud-detector-istio.yaml', 'examples/chat-llm-vllm.yaml', 'examples/recommender-gateway-api.yaml']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^examples\/fraud-detector-istio\.yaml: ModelCanary\/fraud-detector: valid$/m);
  assert.match(run.stdout, /^examples\/chat-llm-vllm\.yaml: ModelCanary\/chat-llm: valid$/m);
  assert.match(run.stdout, /^examples\/recommender-gateway-api\.yaml: ModelCanary\/recommender: valid$/m);
  assert.match(run.stdout, /^examples\/fraud-detector-istio\.yaml: VirtualService\/fraud-detector: skipped: not a ModelCanary$/m);
  assert.match(run.stdout, /^3 ModelCanaries valid$/m);
});

test('validate exits 1 and lists each problem as FILE: kind/name: path: message', async () => {
  const bad = VALID.replace('steps: [10, 30, 100]', 'steps: [10, 30, 200]').replace('failureThreshold: 3', 'failureThresold: 3');
  const path = file('bad.yaml', bad);
  const run = await modelcanary(['validate', path]);
  assert.equal(run.code, 1);
  const lines = run.stdout.trim().split('\n');
  assert.deepEqual(lines.filter((l) => l.includes('ModelCanary/')), [
    `${path}: ModelCanary/fraud-detector: spec.analysis.steps: must end at 100: the last step promotes the canary`,
    `${path}: ModelCanary/fraud-detector: spec.analysis.steps[2]: must be at most 100`,
    `${path}: ModelCanary/fraud-detector: spec.analysis.failureThresold: unknown field (did you mean failureThreshold?)`,
  ]);
  assert.equal(lines.at(-1), '1 ModelCanary checked: 0 valid, 1 invalid (3 problems)');
});

test('validate reads several files and standard input, and a kind: List', async () => {
  const list = file('list.yaml', stringify({ apiVersion: 'v1', kind: 'List', items: [parseDocument(VALID).toJS()] }));
  const run = await modelcanary(['validate', list, '-'], { input: VALID.replace('name: fraud-detector\n  namespace', 'name: from-stdin\n  namespace') });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /list\.yaml: ModelCanary\/fraud-detector: valid/);
  assert.match(run.stdout, /^-: ModelCanary\/from-stdin: valid$/m);
});

test('validate exits 2 on a file that is not YAML, with line and column', async () => {
  const path = file('broken.yaml', 'apiVersion: modelcanary.io/v1alpha1\nkind: ModelCanary\nspec:\n  steps: [10, 30\n  model: x\n');
  const run = await modelcanary(['validate', path]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, new RegExp(`^${path.replaceAll('.', '\\.')}:\\d+:\\d+: not valid YAML: `, 'm'));
});

test('validate exits 2 on a file that cannot be read, after checking the others', async () => {
  const run = await modelcanary(['validate', join(scratch, 'missing.yaml'), 'examples/chat-llm-vllm.yaml']);
  assert.equal(run.code, 2);
  assert.equal(run.stderr, `${join(scratch, 'missing.yaml')}: cannot read: no such file (check the path)\n`);
  assert.match(run.stdout, /ModelCanary\/chat-llm: valid/);
});

test('validate exits 2 when given no file', async () => {
  const run = await modelcanary(['validate']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /name at least one file/);
});

test('a duplicate key is a YAML error, not a silent overwrite', async () => {
  const path = file('dup.yaml', VALID.replace('  model: fraud-detector\n', '  model: fraud-detector\n  model: other\n'));
  const run = await modelcanary(['validate', path]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /:\d+:\d+: not valid YAML: Map keys must be unique/);
});

test('every console example in the README prints what the README shows', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```console\n\$ npx modelcanary (.*)\n([\s\S]*?)```/g)];
  assert.ok(blocks.length >= 2, 'the README shows validate on valid and invalid manifests');
  for (const [, command = '', shown] of blocks) {
    // Expand globs as the shell would before npx sees them.
    const args = command.split(' ').flatMap((arg) => (arg.includes('*') ? globSync(arg, { cwd: root }).sort() : [arg]));
    const run = await modelcanary(args);
    assert.equal(run.stdout, shown, `README block: npx modelcanary ${command}`);
  }
});

test('an unknown command gets one line with the likely command', async () => {
  const run = await modelcanary(['vaildate']);
  assert.equal(run.code, 2);
  assert.equal(run.stderr, 'modelcanary: unknown command "vaildate" (did you mean validate?); see modelcanary --help\n');
});

test('a misspelt kind, another kind of modelcanary.io or a wrong apiVersion is an error; other kinds are skipped', async () => {
  const path = file(
    'kinds.yaml',
    [
      VALID.replace('kind: ModelCanary', 'kind: ModelCanery'),
      VALID.replace('kind: ModelCanary', 'kind: modelcanary'),
      VALID.replace('apiVersion: modelcanary.io/v1alpha1\nkind: ModelCanary', 'apiVersion: argoproj.io/v1alpha1\nkind: Rollout'),
      VALID.replace('apiVersion: modelcanary.io/v1alpha1\nkind: ModelCanary', 'apiVersion: modelcanary.io/v1alpha1\nkind: Canary'),
      VALID.replace('apiVersion: modelcanary.io/v1alpha1', 'apiVersion: modelcanary.io/v1'),
      'apiVersion: v1\nkind: Service\nmetadata: {name: plain}\n',
    ].join('---\n'),
  );
  const run = await modelcanary(['validate', path]);
  assert.equal(run.code, 1, run.stderr);
  const lines = run.stdout.trim().split('\n').filter((l) => !l.includes('VirtualService/') && !l.includes('DestinationRule/'));
  assert.deepEqual(lines, [
    `${path}: ModelCanery/fraud-detector: kind: "ModelCanery": did you mean ModelCanary?`,
    `${path}: modelcanary/fraud-detector: kind: "modelcanary": did you mean ModelCanary?`,
    `${path}: Rollout/fraud-detector: skipped: not a ModelCanary`,
    `${path}: Canary/fraud-detector: kind: "Canary" is not a kind of modelcanary.io: its only kind is ModelCanary`,
    `${path}: ModelCanary/fraud-detector: apiVersion: must be "modelcanary.io/v1alpha1", not "modelcanary.io/v1"`,
    `${path}: Service/plain: skipped: not a ModelCanary`,
    '4 ModelCanaries checked: 0 valid, 4 invalid (4 problems)',
  ]);
});

test('validate walks a directory: *.yaml and *.yml, recursively, sorted; hidden entries and plain YAML skipped', async () => {
  const dir = join(scratch, 'tree');
  mkdirSync(join(dir, 'b', 'nested'), { recursive: true });
  mkdirSync(join(dir, '.git'));
  mkdirSync(join(dir, 'node_modules'));
  writeFileSync(join(dir, 'z.yml'), VALID.replace('name: fraud-detector\n  namespace', 'name: zed\n  namespace'));
  writeFileSync(join(dir, 'a.yaml'), VALID.replace('name: fraud-detector\n  namespace', 'name: ay\n  namespace'));
  writeFileSync(join(dir, 'b', 'nested', 'c.YAML'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n');
  writeFileSync(join(dir, 'b', 'values.yaml'), 'replicas: 2\n');
  writeFileSync(join(dir, 'b', 'notes.txt'), 'kind: ModelCanery\n');
  writeFileSync(join(dir, '.git', 'x.yaml'), 'kind: ModelCanery\n');
  writeFileSync(join(dir, 'node_modules', 'x.yaml'), 'kind: ModelCanery\n');
  const run = await modelcanary(['validate', dir]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.deepEqual(
    run.stdout.split('\n').filter((l) => l !== '' && !/VirtualService|DestinationRule/.test(l)),
    [
      `${dir}/a.yaml: ModelCanary/ay: valid`,
      `${dir}/b/nested/c.YAML: ConfigMap/cm: skipped: not a ModelCanary`,
      `${dir}/b/values.yaml: document 1: skipped: not a Kubernetes object`,
      `${dir}/z.yml: ModelCanary/zed: valid`,
      '2 ModelCanaries valid',
    ],
  );
  // Named on the command line, the same plain YAML is a mistake.
  const named = await modelcanary(['validate', join(dir, 'b', 'values.yaml')]);
  assert.equal(named.code, 1);
  assert.match(named.stdout, /values\.yaml: document 1: not a Kubernetes object: expected a mapping with apiVersion, kind and metadata$/m);
  const none = await modelcanary(['validate', join(dir, 'b', 'nested')]);
  assert.equal(none.code, 0);
  assert.equal(none.stdout.split('\n').at(-2), 'no ModelCanary found (1 document of other kinds skipped)');
});

test('validate -o json: one object for CI, with each error located, and the same exit code', async () => {
  const bad = file('bad-for-json.yaml', `apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n---\n${VALID.replace('steps: [10, 30, 100]', 'steps: [10, 30, 200]')}`);
  const run = await modelcanary(['validate', '-o', 'json', bad, 'examples/chat-llm-vllm.yaml', join(scratch, 'nope.yaml')]);
  assert.equal(run.code, 2, run.stderr);
  assert.equal(run.stderr, '', 'everything is in the JSON');
  const report = JSON.parse(run.stdout) as Record<string, unknown>;
  // The Service takes three lines and the separator one, before the ModelCanary's steps.
  const line = VALID.split('\n').findIndex((l) => l.includes('steps: [10, 30, 100]')) + 1 + 4;
  assert.deepEqual(report, {
    files: [bad, 'examples/chat-llm-vllm.yaml', join(scratch, 'nope.yaml')],
    // The Service, the example's ModelCanary, VirtualService and DestinationRule, and chat-llm.
    documents: 5,
    valid: 1,
    invalid: 1,
    skipped: 3,
    unreadable: 1,
    errors: [
      { file: bad, document: 2, kind: 'ModelCanary', name: 'fraud-detector', path: 'spec.analysis.steps', line, message: 'must end at 100: the last step promotes the canary' },
      { file: bad, document: 2, kind: 'ModelCanary', name: 'fraud-detector', path: 'spec.analysis.steps[2]', line, message: 'must be at most 100' },
      { file: join(scratch, 'nope.yaml'), document: null, kind: null, name: null, path: null, line: null, message: 'cannot read: no such file (check the path)' },
    ],
  });
  const valid = await modelcanary(['validate', '--output=json', 'examples/chat-llm-vllm.yaml']);
  assert.equal(valid.code, 0);
  assert.deepEqual((JSON.parse(valid.stdout) as { errors: unknown[] }).errors, []);
  const wrong = await modelcanary(['validate', '-o', 'yaml', 'examples/chat-llm-vllm.yaml']);
  assert.equal(wrong.code, 2);
  assert.equal(wrong.stderr, 'modelcanary validate: -o must be text or json, not yaml; see modelcanary validate --help\n');
});

const MiB = 1024 * 1024;

/** Billion laughs: nine levels of nine aliases each, 9^9 strings from 90 aliases in 400 bytes. */
function billionLaughs(): string {
  const lines = ['l0: &l0 "lol"'];
  for (let level = 1; level <= 9; level++) lines.push(`l${level}: &l${level} [${Array.from({ length: 9 }, () => `*l${level - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

/** Two anchors, each 90 levels deep, the second nesting the first: shallow text, a value 181 deep. */
function deepThroughAliases(): string {
  return `a: &a ${'['.repeat(90)}1${']'.repeat(90)}\nb: &b ${'['.repeat(90)}*a${']'.repeat(90)}\n`;
}

/** Hostile manifests, generated here: a 50 MiB file is not something to commit. */
const HOSTILE: { name: string; text: () => string | Buffer; refusal: string }[] = [
  { name: 'alias-bomb.yaml', text: billionLaughs, refusal: 'refused: aliases expand to more than 100 copies (a YAML alias bomb?)' },
  { name: 'many-aliases.yaml', text: () => Array.from({ length: 150 }, (_, i) => `a${i}: &a${i} x\nb${i}: *a${i}\n`).join(''), refusal: 'refused: more than 100 aliases (a YAML alias bomb?)' },
  { name: 'huge.yaml', text: () => Buffer.concat([Buffer.from('apiVersion: v1\nkind: ConfigMap\ndata:\n  x: "'), Buffer.alloc(50 * MiB, 'x'), Buffer.from('"\n')]), refusal: 'refused: larger than 4 MiB' },
  { name: 'deep-flow.yaml', text: () => `${'['.repeat(10_000)}${']'.repeat(10_000)}\n`, refusal: 'refused: nested deeper than 100 levels (line 1)' },
  { name: 'deep-sequences.yaml', text: () => `${'- '.repeat(10_000)}x\n`, refusal: 'refused: nested deeper than 100 levels (line 1)' },
  // Block mappings need one more space per level: a thousand levels fit in half a MiB.
  { name: 'deep-mappings.yaml', text: () => Array.from({ length: 1_000 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n'), refusal: 'refused: nested deeper than 100 levels (line 101)' },
  { name: 'deep-through-aliases.yaml', text: deepThroughAliases, refusal: 'refused: nested deeper than 100 levels (through aliases)' },
];

test('hostile manifests are refused with exit 2, naming the file and the limit, and the other files are still checked', async () => {
  const paths = HOSTILE.map((h) => file(h.name, h.text()));
  const run = await modelcanary(['validate', ...paths, 'examples/chat-llm-vllm.yaml']);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.deepEqual(
    run.stderr.trim().split('\n'),
    HOSTILE.map((h, i) => `${paths[i] ?? ''}: ${h.refusal}`),
  );
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  assert.match(run.stdout, /^examples\/chat-llm-vllm\.yaml: ModelCanary\/chat-llm: valid$/m);
  assert.match(run.stdout, new RegExp(`; ${HOSTILE.length} file\\(s\\) could not be read$`, 'm'));
});

test('each hostile manifest is refused at once, not after parsing it all', async () => {
  const io = { stdout: { write: () => true }, stderr: { write: () => true }, stdin: (async function* () {})(), cwd: scratch };
  for (const h of HOSTILE) {
    file(h.name, h.text());
    const started = performance.now();
    const read = await readYamlFile(h.name, io);
    const elapsed = performance.now() - started;
    assert.deepEqual(read, { ok: false, messages: [`${h.name}: ${h.refusal}`] });
    assert.ok(elapsed < 1000, `${h.name} took ${Math.round(elapsed)} ms`);
  }
});

test('standard input over 4 MiB is refused without reading the rest', async () => {
  const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [join(root, 'bin/modelcanary.js'), 'validate', '-'], { cwd: root }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number(error.code), stderr });
    });
    // The command stops reading at the limit, so the end of this write meets a closed pipe.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(`data: "${'x'.repeat(5 * MiB)}"\n`);
  });
  assert.equal(run.code, 2);
  assert.equal(run.stderr, '-: refused: larger than 4 MiB\n');
});

test('a manifest with a few anchors and several documents validates exactly as the plain one', async () => {
  const anchored = VALID.replace('host: fraud-detector, subset: v1', 'host: &host fraud-detector, subset: v1').replace('host: fraud-detector, subset: v2', 'host: *host, subset: v2');
  assert.notEqual(anchored, VALID, 'the example names its destinations as this test expects');
  const plain = await modelcanary(['validate', '-'], { input: VALID });
  const withAliases = await modelcanary(['validate', '-'], { input: anchored });
  assert.equal(withAliases.code, 0, withAliases.stdout + withAliases.stderr);
  assert.equal(withAliases.stdout, plain.stdout);
  assert.match(plain.stdout, /^-: VirtualService\/fraud-detector: skipped: not a ModelCanary$/m);
});

test('a duplicate key among tens of thousands is found in one pass, with its line', async () => {
  const keys = Array.from({ length: 40_000 }, (_, i) => `  k${i}: v`);
  const path = file('wide.yaml', `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wide}\ndata:\n${keys.join('\n')}\n  k7: again\n`);
  const started = performance.now();
  const run = await modelcanary(['validate', path]);
  assert.equal(run.code, 2);
  assert.equal(run.stderr, `${path}:40005:3: not valid YAML: Map keys must be unique\n`);
  // yaml's own check compared every key with every earlier one: minutes for this file.
  assert.ok(performance.now() - started < 15_000, `took ${Math.round(performance.now() - started)} ms`);
});
