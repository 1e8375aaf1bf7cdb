// Writes the dashboards' JSON into every folder that ships them: `npm run dashboards`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DASHBOARD_DIRS, generateDashboards, renderDashboard } from './src/index.ts';

const root = join(import.meta.dirname, '..');
const files = Object.entries(generateDashboards());
for (const dir of DASHBOARD_DIRS) {
  mkdirSync(join(root, dir), { recursive: true });
  for (const [file, dashboard] of files) {
    writeFileSync(join(root, dir, file), renderDashboard(dashboard));
    console.log(join(dir, file));
  }
}
