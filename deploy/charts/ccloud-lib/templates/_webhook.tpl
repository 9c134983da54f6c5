{{/*
"ccloud.webhook" renders a service's validating admission webhook (Kubernetes store only):
the serving certificate's Secret and the ValidatingWebhookConfiguration that sends
kube-apiserver's reviews of the listed writes to the service's webhook port.

The certificate is made by Helm (its own CA, valid .Values.webhook.certValidDays) and kept
across upgrades: an existing Secret is looked up and reused, so the pods' mounted
certificate and the configuration's caBundle stay a pair. A plain `helm template` (no
cluster to look in) makes a new pair each time.
*/}}
{{- define "ccloud.webhook" -}}
{{- $name := include "ccloud.fullname" . -}}
{{- $secretName := printf "%s-webhook-tls" $name -}}
{{- $host := printf "%s.%s.svc" $name .Release.Namespace -}}
{{- $data := include "ccloud.certData" (dict "root" . "secret" $secretName "ca" (printf "%s-webhook-ca" $name) "hosts" (list $host (printf "%s.cluster.local" $host)) "days" .Values.webhook.certValidDays) | fromYaml -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $secretName }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
type: kubernetes.io/tls
data:
  ca.crt: {{ index $data "ca.crt" }}
  tls.crt: {{ index $data "tls.crt" }}
  tls.key: {{ index $data "tls.key" }}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ $name }}-{{ .Release.Namespace }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
webhooks:
  - name: validate.{{ .Values.rbac.group }}
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: {{ .Values.webhook.failurePolicy }}
    timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
    matchPolicy: Equivalent
    clientConfig:
      service:
        name: {{ $name }}
        namespace: {{ .Release.Namespace }}
        port: {{ .Values.webhook.port }}
        path: {{ .Values.webhook.path }}
      caBundle: {{ index $data "ca.crt" }}
    rules:
      {{- toYaml .Values.webhook.rules | nindent 6 }}
{{- end -}}
