//go:build tools

// The binaries built from this module, imported here (never compiled) so that `go mod tidy`
// keeps their modules: build.sh builds kube-apiserver (and ./cmd/etcd); .ci/run builds
// kubectl only on a machine that has none and no package for it.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
