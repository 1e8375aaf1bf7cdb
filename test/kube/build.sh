#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from the published modules pinned in go.mod, and
# copies the CRDs the envtest installs (Istio, Gateway API, InferencePool, and prometheus-operator's
# PrometheusRule, ServiceMonitor and PodMonitor) from the modules pinned in crdsrc/go.mod, into a
# cache folder keyed by version:
#   ${MODELCANARY_KUBE_CACHE:-$HOME/.cache/modelcanary/kube}/<k8s-version>-<etcd-version>/
# and the real helm from the module pinned in helm/go.mod (for test/helm.test.ts) into:
#   ${MODELCANARY_KUBE_CACHE:-$HOME/.cache/modelcanary/kube}/helm-<helm-version>/helm
# Does nothing when they are already there. Prints the envtest folder on stdout; progress goes
# to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The version a go.mod requires of a module, whether in a require block or on one line.
required() {
  sed -nE "s#^[[:space:]]*(require[[:space:]]+)?$1[[:space:]]+(v[^[:space:]]+).*#\2#p" "$2" | head -n 1
}

k8s="$(required k8s.io/kubernetes "$here/go.mod")"
etcd="$(required go.etcd.io/etcd/server/v3 "$here/go.mod")"
istio="$(required istio.io/api "$here/crdsrc/go.mod")"
gateway="$(required sigs.k8s.io/gateway-api "$here/crdsrc/go.mod")"
inference="$(required sigs.k8s.io/gateway-api-inference-extension "$here/crdsrc/go.mod")"
promop="$(required github.com/prometheus-operator/prometheus-operator "$here/crdsrc/go.mod")"
helm="$(required helm.sh/helm/v3 "$here/helm/go.mod")"
for v in k8s etcd istio gateway inference promop helm; do
  [ -n "${!v}" ] || { echo "build.sh: no $v version found in $here/go.mod, crdsrc/go.mod or helm/go.mod" >&2; exit 1; }
done

cache="${MODELCANARY_KUBE_CACHE:-$HOME/.cache/modelcanary/kube}"
out="$cache/$k8s-$etcd"
crd_stamp="istio.io/api@$istio sigs.k8s.io/gateway-api@$gateway sigs.k8s.io/gateway-api-inference-extension@$inference github.com/prometheus-operator/prometheus-operator@$promop"

helm_out="$cache/helm-$helm"

have_binaries() { [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; }
have_crds() { [ -f "$out/crds/VERSIONS" ] && [ "$(cat "$out/crds/VERSIONS")" = "$crd_stamp" ]; }
have_helm() { [ -x "$helm_out/helm" ]; }

if have_binaries && have_crds && have_helm; then
  echo "$out"
  exit 0
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: Go is needed (https://go.dev/dl, or /usr/local/go/bin on PATH)" >&2; exit 1; }

mkdir -p "$cache"

# helm, from its own module (helm/go.mod): its k8s.io/* v0.37 and grpc would otherwise move the
# kube-apiserver build list. The version stamps are those of helm's own Makefile, so that `helm
# version` names the release and the default capabilities (`helm template`, `helm lint`) name the
# Kubernetes minor of the client-go it was built with.
if ! have_helm; then
  echo "build.sh: building helm $helm (a cold build takes about 5 minutes)" >&2
  helm_work="$(mktemp -d "$cache/.build-helm.XXXXXX")"
  (
    cd "$here/helm"
    client_go="$(go list -m -f '{{.Version}}' k8s.io/client-go)"
    kube_minor="${client_go#v0.}"
    kube_minor="${kube_minor%%.*}"
    flags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/internal/version.metadata="
    flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
    done
    CGO_ENABLED=0 nice -n 10 go build -trimpath -buildvcs=false -ldflags="$flags" -o "$helm_work/helm" helm.sh/helm/v3/cmd/helm
  ) || { rm -rf "$helm_work"; exit 1; }
  mkdir -p "$helm_out"
  mv -f "$helm_work/helm" "$helm_out/helm"
  rm -rf "$helm_work"
fi

if have_binaries && have_crds; then
  echo "$out"
  exit 0
fi
# Built beside the destination and moved in at the end, so that an interrupted build never
# leaves a folder that looks complete.
work="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if ! have_binaries; then
  echo "build.sh: building kube-apiserver $k8s and etcd $etcd (a cold build takes several minutes)" >&2
  minor="${k8s#v1.}"
  minor="${minor%%.*}"
  # The version stamps k8s's own build sets (hack/lib/version.sh), so that /version and
  # `kubectl version` report the real server version.
  stamp=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (
    cd "$here"
    nice -n 10 go build -trimpath -buildvcs=false -ldflags="-s -w$stamp" -o "$work/" \
      k8s.io/kubernetes/cmd/kube-apiserver ./cmd/etcd
  )
else
  cp -p "$out/kube-apiserver" "$out/etcd" "$work/"
fi

echo "build.sh: copying CRDs from $crd_stamp" >&2
mkdir -p "$work/crds"
module_dir() {
  (cd "$here/crdsrc" && go mod download -json "$1") | sed -nE 's#^[[:space:]]*"Dir": "(.*)",?$#\1#p'
}
istio_dir="$(module_dir istio.io/api)"
gateway_dir="$(module_dir sigs.k8s.io/gateway-api)"
inference_dir="$(module_dir sigs.k8s.io/gateway-api-inference-extension)"
promop_dir="$(module_dir github.com/prometheus-operator/prometheus-operator)"

cp "$istio_dir/kubernetes/customresourcedefinitions.gen.yaml" "$work/crds/istio.yaml"
for f in "$gateway_dir"/config/crd/standard/*.yaml; do
  # The standard folder also holds a ValidatingAdmissionPolicy; only the CRDs are wanted.
  if grep -q '^kind: CustomResourceDefinition' "$f"; then cp "$f" "$work/crds/gateway-api-$(basename "$f")"; fi
done
pool="$(find "$inference_dir/config/crd" -name 'inference.networking.k8s.io_inferencepools.yaml' | head -n 1)"
[ -n "$pool" ] || { echo "build.sh: no InferencePool (inference.networking.k8s.io) CRD in $inference_dir" >&2; exit 1; }
cp "$pool" "$work/crds/inference-extension-$(basename "$pool")"
# Only the kinds deploy/monitoring and the chart render: the Prometheus and Alertmanager CRDs are
# about 700 KB each, and the envtest installs every CRD here at each start.
for kind in prometheusrules servicemonitors podmonitors; do
  cp "$promop_dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$work/crds/prometheus-operator-$kind.yaml"
done
chmod -R u+w "$work/crds"
echo "$crd_stamp" > "$work/crds/VERSIONS"

mkdir -p "$out"
mv -f "$work/kube-apiserver" "$work/etcd" "$out/"
rm -rf "$out/crds"
mv "$work/crds" "$out/crds"
echo "$out"
