//go:build tools

// Imported here (never compiled) so that `go mod tidy` keeps helm's command and its whole
// build list; build.sh builds helm.sh/helm/v3/cmd/helm from this module.
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
