import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './manifests.ts';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real binary as a user would, on the Node that runs the tests (24), from the repository root. */
export function modelcanary(args: string[], options: { input?: string; cwd?: string } = {}): Promise<Run> {
  const root = fileURLToPath(ROOT);
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(root, 'bin/modelcanary.js'), ...args], { cwd: options.cwd ?? root }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}
