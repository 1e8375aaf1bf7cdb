// `npm run bench` prints the engine's and validation's tables (bench/run.ts);
// `npm run bench -- scale --canaries N` runs the scale benchmark (bench/scale.ts) instead.
if (process.argv[2] === 'scale') {
  process.argv.splice(2, 1);
  await import('./scale.ts');
} else {
  await import('./run.ts');
}
