//go:build tools

// Imported here (never compiled) so that `go mod tidy` keeps the modules whose CRD files
// build.sh copies: istio.io/api's kubernetes/customresourcedefinitions.gen.yaml, Gateway
// API's config/crd/standard and the Inference Extension's InferencePool (API v1).
package crdsrc

import (
	_ "istio.io/api/networking/v1"
	_ "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
