#!/usr/bin/env node
// The kubectl plugin: `kubectl modelcanary status NAME` runs `modelcanary status NAME`. Kept as plain JavaScript so that an older Node fails with a clear message
// instead of a syntax error: the sources are TypeScript run by Node 24's type stripping.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(
    `modelcanary needs Node.js 24 or later, and this is ${process.version}.\n` +
      'Run it through npm (npx modelcanary …, npm run …), which uses the Node 24 that npm ci installs.\n',
  );
  process.exit(2);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, cwd: process.cwd() });
