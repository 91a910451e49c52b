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
{{- $_ := set $base "fleet" (dict "recognize" (list "listener" "host" "source" "kubernetes")) }}
{{- if .Values.node.instancePerPod }}
{{- $_ := set $base "template" (dict "ways" (list "kubernetes")) }}
{{- end }}
{{- end }}
{{- mustMergeOverwrite $base (deepCopy .Values.config) | toYaml }}
{{- end }}

{{/* The mock's restricted security context: non-root, read-only, no capability. */}}
{{- define "imdsmock.restricted" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
{{- include "imdsmock.locked" . }}
{{- end }}

{{/* What every container of the chart has: no privilege, no escalation, a read-only root,
the default seccomp profile, and no capability but those named in "add". */}}
{{- define "imdsmock.locked" }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  {{- with .add }}
  add: {{ toJson . }}
  {{- end }}
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

{{/* Node values the schema cannot explain in one line. */}}
{{- define "imdsmock.checkNode" -}}
{{- $host := .Values.node.host }}
{{- if and $host .Values.node.dummyLink }}
{{- fail (printf "node.host is %q with node.dummyLink; the mock listens on 169.254.169.254:80 there: leave node.host empty" $host) }}
{{- end }}
{{- if or (hasPrefix "127." $host) (eq $host "0.0.0.0") }}
{{- fail (printf "node.host is %q; expected an IPv4 address of the node that pods can reach, not loopback or 0.0.0.0 (the kernel does not DNAT a pod's packet to loopback), or empty for the node's IP" $host) }}
{{- end }}
{{- end }}
