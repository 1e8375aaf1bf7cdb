import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { globSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, stringify } from 'yaml';
import { ROOT } from './helpers/manifests.ts';
import { modelcanary } from './helpers/cli.ts';

const root = fileURLToPath(ROOT);



const scratch = mkdtempSync(join(tmpdir(), 'modelcanary-validate-'));
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});
function file(name: string, text: string): string {
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
  assert.match(run.stderr, /missing\.yaml: cannot read: ENOENT/);
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

test('an unknown command gets the usage', async () => {
  const run = await modelcanary(['vaildate']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /unknown command "vaildate"/);
  assert.match(run.stderr, /validate FILE/);
});
