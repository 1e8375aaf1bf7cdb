// The container image, checked without Docker. This machine (and CI) has no Docker engine, so
// the test reads the Dockerfile, checks what Kubernetes relies on, and then reproduces the
// final image's file tree by carrying out the Dockerfile's own instructions in a temporary
// directory per stage (COPY from the build context honouring .dockerignore, COPY --from, the
// stage's `npm ci`, `ln -s`), and runs the entrypoint there the way the image would. An
// instruction the test cannot reproduce fails the test loudly rather than being skipped.
//
// What only a real build can check (the base image's contents, its node binary, `docker run`)
// is out of reach: the entrypoint runs on this process's Node 24 (process.execPath).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const DOCKERFILE = join(REPO, 'Dockerfile');

// ---------------------------------------------------------------------------------------------
// A small Dockerfile parser: enough for this project's Dockerfile, strict about the rest.

interface Instruction {
  /** Upper-cased, e.g. COPY. */
  keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  args: string;
  /** 1-based line of the keyword, for messages. */
  line: number;
}

interface Stage {
  /** The image or earlier stage named by FROM, with ARG defaults substituted. */
  base: string;
  name: string | undefined;
  index: number;
  instructions: Instruction[];
}

function parseInstructions(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let logical = lines[i] ?? '';
    if (/^\s*(#|$)/.test(logical)) continue;
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      logical = logical.slice(0, -1);
      i++;
      const next = lines[i] ?? '';
      if (/^\s*#/.test(next)) continue; // comment lines inside a continuation are dropped
      logical += next;
    }
    const match = /^\s*(\S+)\s*(.*?)\s*$/.exec(logical);
    if (match === null) continue;
    instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: match[2] ?? '', line: start + 1 });
  }
  return instructions;
}

function substitute(text: string, vars: Map<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => vars.get(braced ?? bare ?? '') ?? whole);
}

function parseDockerfile(text: string): Stage[] {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of parseInstructions(text)) {
    if (instruction.keyword === 'FROM') {
      const words = substitute(instruction.args, globalArgs).split(/\s+/).filter((word) => !word.startsWith('--'));
      const [base, as, name] = words;
      assert.ok(base !== undefined, `Dockerfile line ${instruction.line}: FROM without an image`);
      assert.ok(as === undefined || (as.toUpperCase() === 'AS' && name !== undefined && words.length === 3), `Dockerfile line ${instruction.line}: cannot parse "FROM ${instruction.args}"`);
      stages.push({ base, name, index: stages.length, instructions: [] });
      continue;
    }
    const current = stages.at(-1);
    if (current === undefined) {
      assert.equal(instruction.keyword, 'ARG', `Dockerfile line ${instruction.line}: only ARG may come before the first FROM`);
      const [key, value] = instruction.args.split('=', 2);
      if (key !== undefined && value !== undefined) globalArgs.set(key, value);
      continue;
    }
    current.instructions.push(instruction);
  }
  return stages;
}

/** The argument list of an exec-form instruction (ENTRYPOINT ["a", "b"]); shell form is rejected. */
function execForm(instruction: Instruction): string[] {
  assert.ok(instruction.args.startsWith('['), `Dockerfile line ${instruction.line}: ${instruction.keyword} must be in exec form (a JSON array), so that signals reach the process instead of /bin/sh`);
  const parsed: unknown = JSON.parse(instruction.args);
  assert.ok(Array.isArray(parsed) && parsed.every((item) => typeof item === 'string'), `Dockerfile line ${instruction.line}: ${instruction.keyword} must be an array of strings`);
  return parsed;
}

/** The words of a shell-form RUN, refusing anything a plain whitespace split would get wrong. */
function shellWords(instruction: Instruction): string[] {
  assert.doesNotMatch(instruction.args, /[;&|<>$`'"\\()*?]/, `Dockerfile line ${instruction.line}: the test reproduces only simple RUN commands; extend it for "RUN ${instruction.args}"`);
  return instruction.args.split(/\s+/);
}

/** COPY's options (--from=deps) and its sources and destination. */
function copyArgs(instruction: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  assert.ok(!instruction.args.startsWith('['), `Dockerfile line ${instruction.line}: the test reproduces only the plain form of COPY`);
  const words = instruction.args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--') === true) {
    const option = words.shift() ?? '';
    const fromMatch = /^--from=(.+)$/.exec(option);
    assert.ok(fromMatch !== null, `Dockerfile line ${instruction.line}: the test does not reproduce COPY ${option}; extend it`);
    from = fromMatch[1];
  }
  const dest = words.pop();
  assert.ok(dest !== undefined && words.length > 0, `Dockerfile line ${instruction.line}: COPY needs a source and a destination`);
  for (const source of words) assert.doesNotMatch(source, /[*?[]/, `Dockerfile line ${instruction.line}: the test does not reproduce wildcard sources (${source})`);
  return { from, sources: words, dest };
}

/** ENV's KEY=value pairs (or the old `ENV KEY value`). */
function envPairs(instruction: Instruction): [string, string][] {
  if (!instruction.args.includes('=')) {
    const [key, ...value] = instruction.args.split(/\s+/);
    return [[key ?? '', value.join(' ')]];
  }
  return instruction.args.split(/\s+/).map((pair) => {
    const at = pair.indexOf('=');
    return [pair.slice(0, at), pair.slice(at + 1).replace(/^"(.*)"$/, '$1')];
  });
}

function lastOf(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.findLast((instruction) => instruction.keyword === keyword);
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile, read once.

const stages = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
const finalStage = stages.at(-1);
assert.ok(finalStage !== undefined, 'the Dockerfile has no FROM');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };

function stageByName(name: string): Stage | undefined {
  return stages.find((stage) => stage.name === name || String(stage.index) === name);
}

/** The image a stage ultimately starts from, following FROM <earlier stage>. */
function rootImage(stage: Stage): string {
  const earlier = stageByName(stage.base);
  return earlier !== undefined && earlier.index < stage.index ? rootImage(earlier) : stage.base;
}

const npmCi = stages.flatMap((stage) => stage.instructions.filter((i) => i.keyword === 'RUN' && /^npm\s+ci\b/.test(i.args)).map((instruction) => ({ stage, instruction })));

test('every stage is built on a Node 24 image', () => {
  for (const stage of stages) {
    assert.match(rootImage(stage), /^(?:docker\.io\/)?(?:library\/)?node:24(?:[.-]|@|$)/, `stage ${stage.name ?? stage.index} is FROM ${stage.base}: the sources are TypeScript run by Node 24's type stripping`);
  }
});

test('the build has at least two stages, so npm and its cache stay out of the final one', () => {
  assert.ok(stages.length >= 2, `${stages.length} stage(s)`);
});

test('the final stage runs as a non-root user given by number, which runAsNonRoot can verify', () => {
  const user = lastOf(finalStage, 'USER');
  assert.ok(user !== undefined, 'the final stage sets no USER, so the image runs as root');
  const [uid, gid] = user.args.split(':');
  assert.match(uid ?? '', /^\d+$/, `USER ${user.args}: Kubernetes can verify runAsNonRoot only for a numeric uid`);
  assert.notEqual(Number(uid), 0, `USER ${user.args} is root`);
  if (gid !== undefined) assert.match(gid, /^\d+$/, `USER ${user.args}: give the group by number too`);
});

test('dependencies are installed by `npm ci --omit=dev` in a stage the final one copies node_modules from', () => {
  assert.equal(npmCi.length, 1, 'expected exactly one RUN npm ci');
  const [{ stage, instruction }] = npmCi as [(typeof npmCi)[number]];
  assert.ok(shellWords(instruction).includes('--omit=dev'), `"RUN ${instruction.args}" installs devDependencies too`);
  assert.notEqual(stage, finalStage, 'npm ci runs in the final stage, leaving the npm cache in the image');
  const copiesFrom = finalStage.instructions.filter((i) => i.keyword === 'COPY').map(copyArgs).filter((copy) => copy.from !== undefined && stageByName(copy.from) === stage);
  assert.ok(copiesFrom.some((copy) => copy.sources.some((source) => basename(source) === 'node_modules')), `the final stage does not COPY --from=${stage.name ?? stage.index} its node_modules`);
});

test('ENTRYPOINT and CMD together are `modelcanary run`', () => {
  const entrypoint = lastOf(finalStage, 'ENTRYPOINT');
  const cmd = lastOf(finalStage, 'CMD');
  assert.ok(entrypoint !== undefined, 'no ENTRYPOINT');
  assert.deepEqual([...execForm(entrypoint), ...(cmd === undefined ? [] : execForm(cmd))], ['modelcanary', 'run']);
});

// ---------------------------------------------------------------------------------------------
// The image, reproduced: one directory per stage standing for that stage's filesystem root.

/** .dockerignore as (pattern, exclude?) rules; the last matching rule wins, as in Docker. */
function dockerignore(): { pattern: string; exclude: boolean }[] {
  const file = join(REPO, '.dockerignore');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const exclude = !line.startsWith('!');
      return { pattern: posix.normalize(line.slice(exclude ? 0 : 1)).replace(/^\/+/, ''), exclude };
    });
}

const IGNORE = dockerignore();

/** Whether .dockerignore keeps a path (relative to the build context) out of the context. */
function ignored(path: string): boolean {
  if (path === '') return false;
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const rule of IGNORE) {
    if (prefixes.some((prefix) => posix.matchesGlob(prefix, rule.pattern))) excluded = rule.exclude;
  }
  return excluded;
}

interface Built {
  root: string;
  workdir: string;
  env: Record<string, string>;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runProcess(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeout: number; uid?: number; gid?: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** npm the way the test was started (npm test sets npm_execpath), else the npm on PATH. */
function npmCommand(args: string[]): [string, string[]] {
  const npmCli = process.env.npm_execpath;
  return npmCli !== undefined && /npm-cli\.[cm]?js$/.test(npmCli) ? [process.execPath, [npmCli, ...args]] : ['npm', args];
}

const INSTALL_TIMEOUT_MS = 180_000;

/** Carries out a stage's instructions in `root`, which stands for the stage's `/`. */
async function build(stage: Stage, root: string, built: Map<Stage, Built>): Promise<Built> {
  const earlier = stageByName(stage.base);
  const parent = earlier !== undefined && earlier.index < stage.index ? built.get(earlier) : undefined;
  if (parent !== undefined) cpSync(parent.root, root, { recursive: true, verbatimSymlinks: true });
  const inRoot = (path: string, workdir: string): string => join(root, posix.resolve(workdir, path));
  const state: Built = { root, workdir: parent?.workdir ?? '/', env: { ...parent?.env } };
  for (const instruction of stage.instructions) {
    const where = `Dockerfile line ${instruction.line}`;
    switch (instruction.keyword) {
      case 'WORKDIR':
        state.workdir = posix.resolve(state.workdir, instruction.args);
        mkdirSync(inRoot('.', state.workdir), { recursive: true });
        break;
      case 'ENV':
        for (const [key, value] of envPairs(instruction)) state.env[key] = value;
        break;
      case 'COPY': {
        const { from, sources, dest } = copyArgs(instruction);
        const source = from === undefined ? undefined : stageByName(from);
        const sourceBuilt = source === undefined ? undefined : built.get(source);
        assert.ok(from === undefined || sourceBuilt !== undefined, `${where}: COPY --from=${from ?? ''} names no earlier stage`);
        const intoDirectory = dest.endsWith('/') || dest === '.' || sources.length > 1;
        for (const sourcePath of sources) {
          const real = sourceBuilt === undefined ? join(REPO, posix.normalize(sourcePath)) : join(sourceBuilt.root, posix.resolve('/', sourcePath));
          if (sourceBuilt === undefined) assert.ok(!ignored(relative(REPO, real).split('\\').join('/')), `${where}: ${sourcePath} is excluded by .dockerignore`);
          assert.ok(existsSync(real), `${where}: ${sourcePath} does not exist`);
          // Docker copies a directory's contents into the destination, a file to it (or into it).
          const target = statSync(real).isDirectory() || !intoDirectory ? inRoot(dest, state.workdir) : join(inRoot(dest, state.workdir), basename(real));
          mkdirSync(dirname(target), { recursive: true });
          cpSync(real, target, {
            recursive: true,
            verbatimSymlinks: true,
            filter: (path) => sourceBuilt !== undefined || !ignored(relative(REPO, path).split('\\').join('/')),
          });
        }
        break;
      }
      case 'RUN': {
        const words = shellWords(instruction);
        if (words[0] === 'npm' && words[1] === 'ci') {
          // --prefer-offline: use the npm cache the repository's own `npm ci` filled.
          const [command, args] = npmCommand([...words.slice(1), '--prefer-offline']);
          const result = await runProcess(command, args, { cwd: inRoot('.', state.workdir), env: { ...process.env, ...state.env }, timeout: INSTALL_TIMEOUT_MS });
          assert.equal(result.code, 0, `${where}: ${words.join(' ')} failed (${result.signal ?? 'no signal'}):\n${result.stdout}\n${result.stderr}`);
        } else if (words[0] === 'ln' && (words[1] === '-s' || words[1] === '-sf') && words.length === 4) {
          const [, , target = '', link = ''] = words;
          const linkPath = inRoot(link, state.workdir);
          mkdirSync(dirname(linkPath), { recursive: true });
          rmSync(linkPath, { force: true });
          // An absolute target means a path inside the image, so inside this stage's root.
          symlinkSync(target.startsWith('/') ? join(root, target) : target, linkPath);
        } else {
          assert.fail(`${where}: the test does not reproduce "RUN ${instruction.args}"; extend it`);
        }
        break;
      }
      case 'USER':
      case 'EXPOSE':
      case 'ENTRYPOINT':
      case 'CMD':
      case 'LABEL':
      case 'STOPSIGNAL':
      case 'HEALTHCHECK':
        break; // image metadata, checked above where it matters
      default:
        assert.fail(`${where}: the test does not reproduce ${instruction.keyword}; extend it`);
    }
  }
  return state;
}

/** The PATH of the official node images (Docker's default); an ENV PATH overrides it. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

describe('the final image, reproduced without Docker', () => {
  let tmp = '';
  let image: Built | undefined;
  let entrypoint: { file: string; args: string[] } | undefined;
  let cmd: string[] = [];
  let user: { uid: number; gid: number } | undefined;

  before(
    async () => {
      tmp = mkdtempSync(join(tmpdir(), 'modelcanary-image-'));
      chmodSync(tmp, 0o755); // so that the image's user can reach the tree below
      const built = new Map<Stage, Built>();
      for (const stage of stages) {
        const root = join(tmp, `stage-${stage.index}`);
        mkdirSync(root);
        built.set(stage, await build(stage, root, built));
      }
      image = built.get(finalStage);
      assert.ok(image !== undefined);

      // The entrypoint, found the way the image would: on PATH, inside the image.
      const entry = lastOf(finalStage, 'ENTRYPOINT');
      const cmdInstruction = lastOf(finalStage, 'CMD');
      assert.ok(entry !== undefined);
      const [program = '', ...args] = execForm(entry);
      cmd = cmdInstruction === undefined ? [] : execForm(cmdInstruction);
      const searchPath = program.includes('/') ? [''] : (image.env.PATH ?? DEFAULT_PATH).split(':');
      const found = searchPath.map((dir) => join(image?.root ?? '', posix.resolve(image?.workdir ?? '/', dir, program))).find((file) => existsSync(file));
      assert.ok(found !== undefined, `ENTRYPOINT ${program} is not on the image's PATH (${searchPath.join(':')})`);
      entrypoint = { file: found, args };

      // Run as the image's USER when this process may switch to it (it runs as root in CI).
      const userInstruction = lastOf(finalStage, 'USER');
      const [uid = '', gid = uid] = userInstruction?.args.split(':') ?? [];
      if (process.getuid?.() === 0 && /^\d+$/.test(uid) && /^\d+$/.test(gid)) user = { uid: Number(uid), gid: Number(gid) };
    },
    { timeout: INSTALL_TIMEOUT_MS + 60_000 },
  );

  after(() => {
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  /** `docker run IMAGE ...args` (no args: the image's CMD), with the image's ENV and WORKDIR. */
  function runImage(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
    assert.ok(image !== undefined && entrypoint !== undefined, 'the image was not reproduced');
    const env = { PATH: image.env.PATH ?? process.env.PATH ?? DEFAULT_PATH, ...image.env, ...extraEnv };
    return runProcess(process.execPath, [entrypoint.file, ...entrypoint.args, ...(args.length === 0 ? cmd : args)], {
      cwd: join(image.root, image.workdir),
      env,
      timeout: 60_000,
      ...user,
    });
  }

  test('the entrypoint is a Node script the image can execute', () => {
    assert.ok(entrypoint !== undefined);
    const shebang = readFileSync(entrypoint.file, 'utf8').split('\n', 1)[0];
    assert.match(shebang ?? '', /^#!(\/usr\/bin\/env node|\/usr\/local\/bin\/node)\s*$/, `${entrypoint.file} starts with ${shebang ?? 'nothing'}`);
    // Files are copied as root with their mode from the build context: the image's user needs the "other" x bit.
    assert.notEqual(statSync(entrypoint.file).mode & 0o001, 0, 'the entrypoint is not executable by the image user');
  });

  test('no devDependency is installed', () => {
    assert.ok(image !== undefined);
    const modules = join(image.root, image.workdir, 'node_modules');
    assert.ok(existsSync(modules), 'the final image has no node_modules');
    for (const dev of ['typescript', 'eslint']) assert.ok(!existsSync(join(modules, dev)), `node_modules/${dev} is in the image`);
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devInstalled = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && entry.dev === true)
      .map(([path]) => path)
      .filter((path) => existsSync(join(image?.root ?? '', image?.workdir ?? '', path)));
    assert.deepEqual(devInstalled, [], 'packages the lockfile marks dev are in the image');
  });

  test('`--version` prints the package version', async () => {
    const result = await runImage(['--version']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${pkg.version}\n`);
    assert.equal(result.stderr, '');
  });

  test('`validate` accepts the examples with production dependencies only', async () => {
    const examples = readdirSync(join(REPO, 'examples'))
      .filter((file) => file.endsWith('.yaml'))
      .map((file) => join(REPO, 'examples', file));
    assert.ok(examples.length > 0, 'no examples/*.yaml');
    const result = await runImage(['validate', ...examples]);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    assert.equal(result.stderr, '');
    const lines = result.stdout.split('\n');
    for (const file of examples) {
      assert.ok(lines.some((line) => line.startsWith(`${file}: `) && line.endsWith(': valid')), `no "valid" line for ${file}:\n${result.stdout}`);
    }
  });

  test('the image leaves the sandbox and the demo out, and says so when asked for them', async () => {
    const src = join(image?.root ?? '', image?.workdir ?? '', 'src');
    assert.equal(existsSync(join(src, 'sandbox')), false, 'src/sandbox is not shipped');
    assert.equal(existsSync(join(src, 'cli', 'demo.ts')), false, 'the demo is not shipped');
    const demo = await runImage(['demo']);
    assert.equal(demo.code, 2);
    assert.match(demo.stderr, /modelcanary demo: not in this installation \(the controller image leaves the demo and the sandbox out\)/);
  });

  test('every module under src/ loads with production dependencies only', async () => {
    // validate loads only part of src/; importing every module catches a devDependency
    // (or a file .dockerignore drops) anywhere in the code the image carries. Modules
    // have no import-time effects, so importing them is safe.
    assert.ok(image !== undefined);
    const src = join(image.root, image.workdir, 'src');
    const modules = readdirSync(src, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !lstatSync(join(src, file)).isDirectory())
      .map((file) => join(src, file));
    assert.ok(modules.length > 0, 'no src/**/*.ts in the image');
    const script = `for (const m of ${JSON.stringify(modules)}) await import(m);`;
    const result = await runProcess(process.execPath, ['--input-type=module', '--eval', script], {
      cwd: join(image.root, image.workdir),
      env: { PATH: process.env.PATH ?? DEFAULT_PATH, ...image.env },
      timeout: 60_000,
      ...user,
    });
    assert.equal(result.code, 0, result.stderr);
  });

  test('the default command (CMD) starts the controller', async () => {
    // No cluster here: pointed at a kubeconfig that does not exist, `run` must load the whole
    // controller with production dependencies only, then stop with a clear message.
    const result = await runImage([], { KUBECONFIG: '/nonexistent/kubeconfig' });
    assert.equal(result.signal, null, 'the process was killed (timed out?)');
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^modelcanary run: cannot load the kubeconfig \/nonexistent\/kubeconfig: /m);
    assert.doesNotMatch(result.stderr, /ERR_MODULE|Cannot find (module|package)/);
  });
});
