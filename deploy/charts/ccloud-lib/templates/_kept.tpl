{{/*
What a service keeps across restarts, upgrades and replicas:

"ccloud.generatedSecrets": a Secret <fullname>-secrets with one random value per key of
.Values.generatedSecrets (env var -> key), made at the first install and looked up and
reused afterwards (a new value would, e.g., turn away every LCM agent already admitted).

"ccloud.dataVolume": the claim for the data folder (.Values.persistence), kept when the
release is uninstalled (helm.sh/resource-policy: keep): it holds what cannot be made
again from the store, e.g. an air-gapped region's mirror.
*/}}
{{- define "ccloud.generatedSecrets" -}}
{{- $name := printf "%s-secrets" (include "ccloud.fullname" .) -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- $kept := ($existing | default dict).data | default dict -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
type: Opaque
data:
  {{- range $env, $key := .Values.generatedSecrets }}
  {{ $key }}: {{ index $kept $key | default (randAlphaNum 64 | b64enc) }}
  {{- end }}
{{- end -}}

{{- define "ccloud.dataVolume" -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "ccloud.fullname" . }}-data
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
spec:
  accessModes:
    {{- toYaml .Values.persistence.accessModes | nindent 4 }}
  resources:
    requests:
      storage: {{ .Values.persistence.size }}
  {{- with .Values.persistence.storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
{{- end -}}
