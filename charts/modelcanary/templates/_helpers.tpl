{{/* The release's name for its objects: the release name, prefixed unless it already says modelcanary. */}}
{{- define "modelcanary.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelcanary.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelcanary.labels" -}}
{{ include "modelcanary.selectorLabels" . }}
app.kubernetes.io/part-of: modelcanary
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "modelcanary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelcanary.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces a namespace-scoped install watches: watchNamespaces, or the release namespace. */}}
{{- define "modelcanary.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson .Values.watchNamespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/*
The controller's rules, the same as deploy/rbac.yaml's ClusterRole modelcanary (test/helm.test.ts
compares them): bound cluster-wide, or in each watched namespace.
*/}}
{{- define "modelcanary.controllerRules" -}}
# Watch ModelCanaries; add and remove the finalizer and replace the status (each a replace
# conditional on the resourceVersion).
- apiGroups: [modelcanary.io]
  resources: [modelcanaries]
  verbs: [get, list, watch, update]
- apiGroups: [modelcanary.io]
  resources: [modelcanaries/status]
  verbs: [update]
# Read and replace the routes named by ModelCanaries (the weights of the managed routes only).
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, update]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, update]
# The preflight: the DestinationRule subsets the versions name must exist before traffic moves.
- apiGroups: [networking.istio.io]
  resources: [destinationrules]
  verbs: [list]
# Say what happened.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
