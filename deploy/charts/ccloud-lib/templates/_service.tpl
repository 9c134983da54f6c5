{{/*
"ccloud.service" renders one service of the set: its ServiceAccount, RBAC (only with the
Kubernetes store backend: with the embedded KV store a pod needs no API access and gets no
token), a Service for its ports and probes (and with expose.enabled a LoadBalancer or
NodePort one for clients outside the cluster), the Deployment, and with the Kubernetes store
the service's admission webhook where it has one (_webhook.tpl), for the gateway the
Secret its users come from (_auth.tpl) and an Ingress (_ingress.tpl), and where the
manifest asks for them a serving certificate (_tls.tpl), the secrets the chart makes once
and a volume for the data folder (_kept.tpl).
*/}}
{{- define "ccloud.service" -}}
{{- $kube := eq .Values.global.store "kube" -}}
{{- $hook := and $kube (.Values.webhook | default dict).enabled -}}
{{- $auth := (.Values.auth | default dict).enabled -}}
{{- $persist := (.Values.persistence | default dict).enabled -}}
{{- $tls := (.Values.tls | default dict).enabled -}}
{{- $generated := .Values.generatedSecrets | default dict -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "ccloud.fullname" . }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
automountServiceAccountToken: {{ $kube }}
{{- if and $kube .Values.rbac.create .Values.rbac.rules }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "ccloud.fullname" . }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
rules:
  {{- range .Values.rbac.rules }}
  - apiGroups: [{{ $.Values.rbac.group | quote }}]
    resources:
      {{- toYaml .resources | nindent 6 }}
    verbs:
      {{- toYaml .verbs | nindent 6 }}
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "ccloud.fullname" . }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "ccloud.fullname" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "ccloud.fullname" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "ccloud.fullname" . }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .Values.service.healthPort | quote }}
    prometheus.io/path: /metrics
spec:
  type: ClusterIP
  selector:
    {{- include "ccloud.selectorLabels" . | nindent 4 }}
  ports:
    {{- include "ccloud.ports" . | nindent 4 }}
    {{- if $hook }}
    - name: webhook
      port: {{ .Values.webhook.port }}
      targetPort: {{ .Values.webhook.port }}
    {{- end }}
{{- if and .Values.expose .Values.expose.enabled }}
---
{{ include "ccloud.exposed" . }}
{{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "ccloud.fullname" . }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  {{- if $persist }}
  strategy:
    type: Recreate  # a ReadWriteOnce volume cannot be attached to the old and new pod
  {{- end }}
  selector:
    matchLabels:
      {{- include "ccloud.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "ccloud.labels" . | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .Values.service.healthPort | quote }}
        prometheus.io/path: /metrics
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "ccloud.fullname" . }}
      automountServiceAccountToken: {{ $kube }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .Values.service.name }}
          image: {{ include "ccloud.image" . | quote }}
          imagePullPolicy: {{ .Values.global.image.pullPolicy }}
          args: [{{ .Values.service.command | quote }}]
          env:
            {{- include "ccloud.env" . | nindent 12 }}
            {{- range $env, $key := $generated }}
            - name: {{ $env }}
              valueFrom:
                secretKeyRef:
                  name: {{ include "ccloud.fullname" $ }}-secrets
                  key: {{ $key }}
            {{- end }}
            {{- range $env, $ref := .Values.secretsFrom }}
            - name: {{ $env }}
              valueFrom:
                secretKeyRef:
                  name: {{ printf "%s-%s" $.Release.Name $ref.service | trunc 63 | trimSuffix "-" }}-{{ $ref.secret }}
                  key: {{ $ref.key }}
                  optional: true  # that service's chart not installed: the code says so
            {{- end }}
            {{- if $tls }}
            - name: {{ .Values.tls.env }}
              value: {{ .Values.tls.certDir | quote }}
            {{- end }}
            {{- if $auth }}
            - name: CCLOUD_TOKENS_FILE
              value: {{ printf "%s/tokens.yaml" .Values.auth.mountPath | quote }}
            {{- end }}
            {{- if $hook }}
            - name: CCLOUD_WEBHOOK_PORT
              value: {{ .Values.webhook.port | quote }}
            - name: CCLOUD_WEBHOOK_CERT_DIR
              value: {{ .Values.webhook.certDir | quote }}
            {{- end }}
          ports:
            {{- include "ccloud.containerPorts" . | nindent 12 }}
            {{- if $hook }}
            - name: webhook
              containerPort: {{ .Values.webhook.port }}
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: {{ .Values.service.healthPort }}
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: {{ .Values.service.healthPort }}
            periodSeconds: 5
            failureThreshold: 2
          startupProbe:
            httpGet:
              path: /healthz
              port: {{ .Values.service.healthPort }}
            periodSeconds: 2
            failureThreshold: 30
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: data
              mountPath: /var/lib/ccloud
            - name: tmp
              mountPath: /tmp
            {{- if $tls }}
            - name: tls
              mountPath: {{ .Values.tls.certDir }}
              readOnly: true
            {{- end }}
            {{- if $auth }}
            - name: auth
              mountPath: {{ .Values.auth.mountPath }}
              readOnly: true
            {{- end }}
            {{- if $hook }}
            - name: webhook-tls
              mountPath: {{ .Values.webhook.certDir }}
              readOnly: true
            {{- end }}
      volumes:
        - name: data
          {{- if $persist }}
          persistentVolumeClaim:
            claimName: {{ .Values.persistence.existingClaim | default (printf "%s-data" (include "ccloud.fullname" .)) }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        - name: tmp
          emptyDir: {}
        {{- if $tls }}
        - name: tls
          secret:
            secretName: {{ include "ccloud.fullname" . }}-tls
        {{- end }}
        {{- if $auth }}
        - name: auth
          secret:
            secretName: {{ .Values.auth.existingSecret | default (printf "%s-auth" (include "ccloud.fullname" .)) }}
        {{- end }}
        {{- if $hook }}
        - name: webhook-tls
          secret:
            secretName: {{ include "ccloud.fullname" . }}-webhook-tls
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- if (.Values.ingress | default dict).enabled }}
---
{{ include "ccloud.ingress" . }}
{{- end }}
{{- if $tls }}
---
{{ include "ccloud.tls" . }}
{{- end }}
{{- if $generated }}
---
{{ include "ccloud.generatedSecrets" . }}
{{- end }}
{{- if and $persist (not .Values.persistence.existingClaim) }}
---
{{ include "ccloud.dataVolume" . }}
{{- end }}
{{- if and $auth (not .Values.auth.existingSecret) }}
---
{{ include "ccloud.auth" . }}
{{- end }}
{{- if $hook }}
---
{{ include "ccloud.webhook" . }}
{{- end }}
{{- end -}}

{{/* The health port is named "health" unless a service port already is that port. */}}
{{- define "ccloud.ports" -}}
{{- $shared := false -}}
{{- range $name, $port := .Values.service.ports }}
{{- if eq (int $port) (int $.Values.service.healthPort) }}{{ $shared = true }}{{ end }}
- name: {{ $name }}
  port: {{ $port }}
  targetPort: {{ $port }}
{{- end }}
{{- if not $shared }}
- name: health
  port: {{ .Values.service.healthPort }}
  targetPort: {{ .Values.service.healthPort }}
{{- end }}
{{- end -}}

{{- define "ccloud.containerPorts" -}}
{{- $shared := false -}}
{{- range $name, $port := .Values.service.ports }}
{{- if eq (int $port) (int $.Values.service.healthPort) }}{{ $shared = true }}{{ end }}
- name: {{ $name }}
  containerPort: {{ $port }}
{{- end }}
{{- if not $shared }}
- name: health
  containerPort: {{ .Values.service.healthPort }}
{{- end }}
{{- end -}}


{{/*
"ccloud.exposed": the Service clients outside the cluster use (.Values.expose): nodes
reaching LCM's agents port and the mirror, BMCs fetching config drives. LoadBalancer or
NodePort; `ports` names which of the service's ports (all when empty), `nodePorts` pins
them by name.
*/}}
{{- define "ccloud.exposed" -}}
{{- $e := .Values.expose -}}
{{- if not (has $e.type (list "LoadBalancer" "NodePort")) }}
{{- fail (printf "expose.type must be LoadBalancer or NodePort, not %q" $e.type) }}
{{- end }}
{{- range $e.ports }}
{{- if not (hasKey $.Values.service.ports .) }}
{{- fail (printf "expose.ports: %q is not a port of %s (its ports: %s)" . $.Values.service.name (keys $.Values.service.ports | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- range $name, $_ := ($e.nodePorts | default dict) }}
{{- if not (hasKey $.Values.service.ports $name) }}
{{- fail (printf "expose.nodePorts: %q is not a port of %s" $name $.Values.service.name) }}
{{- end }}
{{- end }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "ccloud.fullname" . }}-external
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
  {{- with $e.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $e.type }}
  selector:
    {{- include "ccloud.selectorLabels" . | nindent 4 }}
  {{- if and $e.loadBalancerIP (eq $e.type "LoadBalancer") }}
  loadBalancerIP: {{ $e.loadBalancerIP }}
  {{- end }}
  {{- with $e.externalTrafficPolicy }}
  externalTrafficPolicy: {{ . }}
  {{- end }}
  ports:
  {{- range $name, $port := .Values.service.ports }}
  {{- if or (not $e.ports) (has $name $e.ports) }}
    - name: {{ $name }}
      port: {{ $port }}
      targetPort: {{ $port }}
      {{- with (index ($e.nodePorts | default dict) $name) }}
      nodePort: {{ . }}
      {{- end }}
  {{- end }}
  {{- end }}
{{- end -}}
