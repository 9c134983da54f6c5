{{/* Names, labels and the shared CCLOUD_* settings of every service chart. */}}

{{- define "ccloud.fullname" -}}
{{- printf "%s-%s" .Release.Name .Values.service.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ccloud.selectorLabels" -}}
app.kubernetes.io/name: {{ .Values.service.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ccloud.labels" -}}
{{ include "ccloud.selectorLabels" . }}
app.kubernetes.io/part-of: container-cloud
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | default .Chart.Version | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ccloud.natsUrl" -}}
{{- .Values.global.natsUrl | default (printf "nats://%s-nats:4222" .Release.Name) -}}
{{- end -}}

{{- define "ccloud.image" -}}
{{- $img := .Values.global.image -}}
{{- printf "%s:%s" $img.repository ($img.tag | default .Chart.AppVersion | default .Chart.Version) -}}
{{- end -}}

{{/* Service-specific values may name other services of the release: "{release}" -> "<release>-". */}}
{{- define "ccloud.expand" -}}
{{- .value | toString | replace "{release}" (printf "%s-" .root.Release.Name) -}}
{{- end -}}

{{- define "ccloud.env" -}}
- name: CCLOUD_NATS_URL
  value: {{ include "ccloud.natsUrl" . | quote }}
- name: CCLOUD_PREFIX
  value: {{ .Values.global.prefix | quote }}
- name: CCLOUD_REGION
  value: {{ .Values.global.region | quote }}
- name: CCLOUD_STORE
  value: {{ .Values.global.store | quote }}
- name: CCLOUD_HEALTH_HOST
  value: "0.0.0.0"
- name: CCLOUD_HEALTH_PORT
  value: {{ .Values.service.healthPort | quote }}
- name: CCLOUD_LEADER_ELECTION
  value: {{ .Values.global.leaderElection | toString | lower | quote }}
- name: CCLOUD_LEASE_SECONDS
  value: {{ .Values.global.leaseSeconds | quote }}
- name: CCLOUD_DATA_DIR
  value: /var/lib/ccloud
- name: CCLOUD_LOG_LEVEL
  value: {{ .Values.global.logLevel | quote }}
{{- $root := . }}
{{- range $name, $value := .Values.service.env }}
- name: {{ $name }}
  value: {{ include "ccloud.expand" (dict "value" $value "root" $root) | quote }}
{{- end }}
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
