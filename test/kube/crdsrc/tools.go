//go:build tools

// Imported here (never compiled) so that `go mod tidy` keeps the modules whose CRD files
// build.sh copies: istio.io/api's kubernetes/customresourcedefinitions.gen.yaml, Gateway
// API's config/crd/standard, the Inference Extension's InferencePool (API v1) and the
// prometheus-operator's PrometheusRule, ServiceMonitor and PodMonitor (example/
// prometheus-operator-crd; versionutil is only a small package of that module, to import).
package crdsrc

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/versionutil"
	_ "istio.io/api/networking/v1"
	_ "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
