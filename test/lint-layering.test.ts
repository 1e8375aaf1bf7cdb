import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';
import { ROOT } from './helpers/manifests.ts';

// The layering of DESIGN.md §4 is only as good as the lint rule that enforces it: these cases
// lint code that breaks it (without writing it to disk) and expect the rule to object.
// Only the restriction rules run, without type information: the probes exist in no tsconfig.
const eslint = new ESLint({
  cwd: fileURLToPath(ROOT),
  ruleFilter: ({ ruleId }) => ruleId.startsWith('no-restricted'),
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
});

async function restrictedIn(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: fileURLToPath(new URL(file, ROOT)) });
  return (result?.messages ?? []).filter((m) => m.ruleId?.startsWith('no-restricted') === true).map((m) => m.message);
}

const cases: { file: string; code: string; expect: RegExp | undefined }[] = [
  { file: 'src/api/layering-probe.ts', code: "export { main } from '../cli/main.ts';\n", expect: /src\/api must not import src\/cli/ },
  { file: 'src/api/layering-probe.ts', code: "export { default } from 'axios';\n", expect: /src\/api may import only zod/ },
  { file: 'src/analysis/layering-probe.ts', code: "export { x } from '../controller/reconcile.ts';\n", expect: /src\/analysis must not import src\/controller/ },
  { file: 'src/analysis/layering-probe.ts', code: 'export const now = Date.now();\n', expect: /handed `now`/ },
  { file: 'src/analysis/layering-probe.ts', code: 'export const r = Math.random();\n', expect: /handed its randomness/ },
  { file: 'src/metrics/layering-probe.ts', code: "export { x } from '../routing/istio.ts';\n", expect: /src\/metrics must not import src\/routing/ },
  { file: 'src/controller/layering-probe.ts', code: 'export const address = process.env.PROMETHEUS;\n', expect: /Only src\/cli reads the environment/ },
  { file: 'src/controller/layering-probe.ts', code: "export { x } from '../analysis/engine.ts';\n", expect: undefined },
  { file: 'src/cli/layering-probe.ts', code: "export { x } from '../controller/run.ts';\nexport const address = process.env.PROMETHEUS;\n", expect: undefined },
];

for (const c of cases) {
  test(`layering: ${c.file} with ${c.code.trim()}`, async () => {
    const messages = await restrictedIn(c.file, c.code);
    if (c.expect === undefined) assert.deepEqual(messages, []);
    else assert.ok(messages.some((m) => c.expect?.test(m)), `expected ${String(c.expect)}, got ${JSON.stringify(messages)}`);
  });
}
