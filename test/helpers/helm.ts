// The helm that test/kube/build.sh builds: ${MODELCANARY_KUBE_CACHE:-~/.cache/modelcanary/kube}/
// helm-<version of test/kube/helm/go.mod>/helm, and why it cannot run when it is not there.
import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubeBinaries } from '../kube/envtest.ts';
import { ROOT } from './manifests.ts';

function helmBinary(): string {
  const goMod = readFileSync(join(fileURLToPath(ROOT), 'test', 'kube', 'helm', 'go.mod'), 'utf8');
  const version = /^\s*(?:require\s+)?helm\.sh\/helm\/v3\s+(v\S+)/m.exec(goMod)?.[1];
  if (version === undefined) throw new Error('test/kube/helm/go.mod does not require helm.sh/helm/v3');
  return join(dirname(kubeBinaries().dir), `helm-${version}`, 'helm');
}

export const HELM = helmBinary();

function helmMissing(): string | undefined {
  try {
    accessSync(HELM, constants.X_OK);
    return undefined;
  } catch {
    return `${HELM} is not built: run \`bash test/kube/build.sh\` (needs Go; a cold build takes about 5 minutes)`;
  }
}

export const HELM_MISSING = helmMissing();
