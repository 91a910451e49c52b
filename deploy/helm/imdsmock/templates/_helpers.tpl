{{/* The chart's name, or nameOverride. */}}
{{- define "imdsmock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* RELEASE-imdsmock (or the release name alone when it holds the chart's name). */}}
{{- define "imdsmock.fullname" -}}
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

{{- define "imdsmock.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imdsmock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "imdsmock.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "imdsmock.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "imdsmock.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imdsmock.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "imdsmock.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the control API token: the user's, or the chart's. */}}
{{- define "imdsmock.tokenSecret" -}}
{{- default (printf "%s-control" (include "imdsmock.fullname" .)) .Values.controlToken.existingSecret }}
{{- end }}

{{/* The options.hop-limit the mode implies (hopLimit when set). */}}
{{- define "imdsmock.hopLimit" -}}
{{- if kindIs "invalid" .Values.hopLimit }}
{{- if eq .Values.mode "node" }}2{{ else }}64{{ end }}
{{- else }}
{{- .Values.hopLimit }}
{{- end }}
{{- end }}

{{/*
The configuration file: what the mode sets, with .Values.config merged over it (a key the
user gives wins).
*/}}
{{- define "imdsmock.config" -}}
{{- $base := dict "options" (dict "hop-limit" (include "imdsmock.hopLimit" . | int)) }}
{{- if eq .Values.mode "service" }}
{{- $fullname := include "imdsmock.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $fullname (printf "%s.%s" $fullname $ns) (printf "%s.%s.svc" $fullname $ns) (printf "%s.%s.svc.%s" $fullname $ns .Values.service.clusterDomain) }}
{{- $_ := set $base "server" (dict "control-host" "0.0.0.0" "allowed-hosts" $hosts) }}
{{- else if .Values.node.podLookup }}
{{- $fleet := dict "recognize" (list "kubernetes" "source") }}
{{- with .Values.node.template }}
{{- $_ := set $fleet "template" . }}
{{- end }}
{{- $_ := set $base "fleet" $fleet }}
{{- end }}
{{- mustMergeOverwrite $base (deepCopy .Values.config) | toYaml }}
{{- end }}

{{/* The mock's restricted security context: non-root, read-only, no capability. */}}
{{- define "imdsmock.restricted" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The mode, checked even when the schema is skipped (helm --skip-schema-validation). */}}
{{- define "imdsmock.checkMode" -}}
{{- if not (has .Values.mode (list "service" "node")) }}
{{- fail (printf "mode is %q; expected one of: service, node" (toString .Values.mode)) }}
{{- end }}
{{- end }}
