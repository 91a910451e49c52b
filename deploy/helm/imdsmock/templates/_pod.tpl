{{/* Where the mock listens in node mode: 169.254.169.254 itself on the dummy link, else
node.host or the node's IP. */}}
{{- define "imdsmock.nodeHost" -}}
{{- if .Values.node.dummyLink }}169.254.169.254{{ else }}{{ default "$(NODE_IP)" .Values.node.host }}{{ end }}
{{- end }}

{{/* The IMDS port: 80 on the dummy link, else node.port; 1338 in service mode. */}}
{{- define "imdsmock.imdsPort" -}}
{{- if ne .Values.mode "node" }}1338
{{- else if .Values.node.dummyLink }}80
{{- else }}{{ .Values.node.port }}
{{- end }}
{{- end }}

{{/* The pod metadata both modes share. */}}
{{- define "imdsmock.podMetadata" -}}
labels:
  {{- include "imdsmock.selectorLabels" . | nindent 2 }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include "imdsmock.config" . | sha256sum }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* The mock's container: non-root, read-only root, no capability, in either mode. */}}
{{- define "imdsmock.mockContainer" -}}
{{- $node := eq .Values.mode "node" -}}
name: imdsmock
image: {{ include "imdsmock.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
env:
  - name: IMDSMOCK_CONFIG
    value: /etc/imdsmock/imdsmock.yaml
  - name: IMDSMOCK_CONTROL_TOKEN_FILE
    value: /var/run/imdsmock-control/{{ .Values.controlToken.key }}
  # The generated signing key's cache: the root filesystem is read-only.
  - name: XDG_CACHE_HOME
    value: /tmp/cache
  {{- if $node }}
  - name: NODE_NAME
    valueFrom:
      fieldRef:
        fieldPath: spec.nodeName
  - name: NODE_IP
    valueFrom:
      fieldRef:
        fieldPath: status.hostIP
  - name: IMDSMOCK_HOST
    value: {{ include "imdsmock.nodeHost" . | quote }}
  - name: IMDSMOCK_PORT
    value: {{ include "imdsmock.imdsPort" . | quote }}
  {{- if .Values.node.ecs }}
  - name: IMDSMOCK_ECS_LISTEN
    value: {{ ternary "169.254.170.2:80" (printf "$(IMDSMOCK_HOST):%v" .Values.node.ecsPort) .Values.node.dummyLink | quote }}
  {{- end }}
  - name: IMDSMOCK_CONTROL_PORT
    value: {{ .Values.node.controlPort | quote }}
  - name: IMDSMOCK_HEALTHCHECK_URL
    value: "http://$(IMDSMOCK_HOST):$(IMDSMOCK_PORT)"
  {{- else }}
  - name: IMDSMOCK_PORT
    value: "1338"
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - name: imds
    containerPort: {{ include "imdsmock.imdsPort" . }}
    protocol: TCP
  - name: control
    containerPort: {{ ternary .Values.node.controlPort 1339 $node }}
    protocol: TCP
{{- if $node }}
# Outlive the routing container's preStop hook: the rules go before the mock stops, so a pod
# is never sent to a mock that has gone.
lifecycle:
  preStop:
    exec:
      command: [sleep, "2"]
{{- end }}
readinessProbe:
  exec:
    command: [python3, -I, -S, /opt/imdsmock/healthcheck.py]
  periodSeconds: {{ .Values.probes.periodSeconds }}
  failureThreshold: {{ .Values.probes.failureThreshold }}
  timeoutSeconds: 5
livenessProbe:
  tcpSocket:
    port: imds
    {{- if and $node (or .Values.node.host .Values.node.dummyLink) }}
    host: {{ include "imdsmock.nodeHost" . }}
    {{- end }}
  periodSeconds: {{ .Values.probes.periodSeconds }}
  failureThreshold: {{ .Values.probes.failureThreshold }}
  timeoutSeconds: 5
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- if and $node .Values.node.dummyLink }}
  # Port 80 on 169.254.169.254: only root with NET_BIND_SERVICE may bind it (a
  # host-network pod cannot lower ip_unprivileged_port_start, and Kubernetes gives no
  # ambient capability).
  runAsUser: 0
  runAsNonRoot: false
  {{- include "imdsmock.locked" (dict "add" (list "NET_BIND_SERVICE")) | nindent 2 }}
  {{- else }}
  {{- include "imdsmock.restricted" . | nindent 2 }}
  {{- end }}
volumeMounts:
  - name: config
    mountPath: /etc/imdsmock
    readOnly: true
  - name: control-token
    mountPath: /var/run/imdsmock-control
    readOnly: true
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* The volumes of the mock's container. */}}
{{- define "imdsmock.mockVolumes" -}}
- name: config
  configMap:
    name: {{ include "imdsmock.fullname" . }}
- name: control-token
  secret:
    secretName: {{ include "imdsmock.tokenSecret" . }}
    items:
      - key: {{ .Values.controlToken.key }}
        path: {{ .Values.controlToken.key }}
- name: tmp
  emptyDir:
    sizeLimit: 16Mi
{{- end }}

{{- define "imdsmock.scheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Node mode's routing containers: root in the node's network namespace with NET_ADMIN and
NET_RAW only (iptables needs both), not privileged. */}}
{{- define "imdsmock.routeSecurity" -}}
runAsUser: 0
runAsNonRoot: false
{{- include "imdsmock.locked" (dict "add" (list "NET_ADMIN" "NET_RAW")) }}
{{- end }}

{{- define "imdsmock.routeMounts" -}}
# iptables takes this lock; the node's kube-proxy and CNI take the same one.
- name: xtables-lock
  mountPath: /run/xtables.lock
# What route node added, kept on the node: the next agent or the preStop hook
# removes exactly that.
- name: route-state
  mountPath: /run/imdsmock
- name: tmp
  mountPath: /tmp
{{- end }}
