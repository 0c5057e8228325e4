{{/* The chart's name, at most 63 characters (a label value). */}}
{{- define "deploybot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: object names and the ServiceAccount's default. */}}
{{- define "deploybot.fullname" -}}
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

{{- define "deploybot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deploybot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "deploybot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "deploybot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "deploybot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "deploybot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "deploybot.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces that get the target Role: rbac.targetNamespaces, else every
config.environments[].namespace of an environment on this cluster (no
kubeconfig or context of its own), each once, as a JSON list.
*/}}
{{- define "deploybot.targetNamespaces" -}}
{{- $out := list }}
{{- if .Values.rbac.targetNamespaces }}
{{- $out = .Values.rbac.targetNamespaces }}
{{- else }}
{{- range .Values.config.environments }}
{{- if and .namespace (not .kubeconfig) (not .context) }}
{{- $out = append $out .namespace }}
{{- end }}
{{- end }}
{{- end }}
{{- $out | uniq | toJson }}
{{- end }}

{{/* Whether the impersonation ClusterRole is granted. */}}
{{- define "deploybot.impersonate" -}}
{{- if or .Values.rbac.impersonate (eq (toString (default "" .Values.config.execution)) "impersonate") }}true{{ end }}
{{- end }}
