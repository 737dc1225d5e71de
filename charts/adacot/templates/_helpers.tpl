{{/* Names, labels and the small lists every template shares. */}}

{{- define "adacot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "adacot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "adacot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adacot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "adacot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "adacot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: adacot
{{- end }}

{{- define "adacot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "adacot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "adacot.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) }}
{{- end }}

{{/* The namespaces the operator watches (JSON list; empty = all). Fails on an unusable setting. */}}
{{- define "adacot.watchNamespaces" -}}
{{- if .Values.watch.allNamespaces }}
{{- list | toJson }}
{{- else }}
{{- if not .Values.watch.namespaces }}
{{- fail "watch.namespaces: list at least one namespace when watch.allNamespaces is false" }}
{{- end }}
{{- .Values.watch.namespaces | toJson }}
{{- end }}
{{- end }}

{{/* Namespaces that get the worker ServiceAccount + Role (JSON list). */}}
{{- define "adacot.workerNamespaces" -}}
{{- if .Values.worker.namespaces }}
{{- .Values.worker.namespaces | toJson }}
{{- else if .Values.watch.allNamespaces }}
{{- list .Release.Namespace | toJson }}
{{- else }}
{{- .Values.watch.namespaces | toJson }}
{{- end }}
{{- end }}

{{/* RBAC rules the operator needs inside a watched namespace (the operator contract). */}}
{{- define "adacot.operatorRules" -}}
- apiGroups: ["adacot.dev"]
  resources: ["gradingruns", "difficultybanks", "distillationjobs", "sftjobs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["adacot.dev"]
  resources: ["gradingruns/status", "difficultybanks/status", "distillationjobs/status", "sftjobs/status"]
  verbs: ["get", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "delete", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "persistentvolumeclaims", "services"]
  verbs: ["create", "get", "list", "watch", "delete", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch", "list"]
{{- end }}
