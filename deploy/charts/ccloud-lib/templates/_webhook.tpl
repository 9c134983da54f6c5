{{/*
"ccloud.webhook" renders a service's validating admission webhook (Kubernetes store only):
the serving certificate's Secret and the ValidatingWebhookConfiguration that sends
kube-apiserver's reviews of the listed writes to the service's webhook port.

The certificate is made by Helm (its own CA, valid .Values.webhook.certValidDays) and kept
across upgrades: an existing Secret is looked up and reused, so the pods' mounted
certificate and the configuration's caBundle stay a pair. A plain `helm template` (no
cluster to look in) makes a new pair each time. With global.certManager.issuer.name set,
cert-manager issues it and its cainjector fills caBundle (_tls.tpl).
*/}}
{{- define "ccloud.webhook" -}}
{{- $name := include "ccloud.fullname" . -}}
{{- $secretName := printf "%s-webhook-tls" $name -}}
{{- $host := printf "%s.%s.svc" $name .Release.Namespace -}}
{{- $cert := dict "root" . "secret" $secretName "ca" (printf "%s-webhook-ca" $name) "hosts" (list $host (printf "%s.cluster.local" $host)) "days" .Values.webhook.certValidDays -}}
{{- $managed := ((.Values.global.certManager | default dict).issuer | default dict).name -}}
{{- if not $managed }}
{{- $_ := set $cert "data" (include "ccloud.certData" $cert | fromYaml) }}
{{- end }}
{{- include "ccloud.servingCert" $cert }}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ $name }}-{{ .Release.Namespace }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
  {{- if $managed }}
  annotations:
    # cert-manager's cainjector writes the issuer's CA into caBundle (and on renewal).
    cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ $secretName }}
  {{- end }}
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
      {{- if not $managed }}
      caBundle: {{ index $cert.data "ca.crt" }}
      {{- end }}
    rules:
      {{- toYaml .Values.webhook.rules | nindent 6 }}
{{- end -}}
