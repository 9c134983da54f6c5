{{/*
"ccloud.certData": the data of a kubernetes.io/tls Secret (ca.crt, tls.crt, tls.key) for
.hosts, signed by a CA of its own (.days valid), as YAML: the Secret .secret's data when
it exists (kept across upgrades, so mounted certificates and the CA others were given stay
a pair), else a new pair. Callers read it with fromYaml.
*/}}
{{- define "ccloud.certData" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $existing (hasKey ($existing.data | default dict) "ca.crt") -}}
{{- toYaml $existing.data -}}
{{- else -}}
{{- $ca := genCA .ca (int .days) -}}
{{- $cert := genSignedCert (first .hosts) nil .hosts (int .days) $ca -}}
{{- toYaml (dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc)) -}}
{{- end -}}
{{- end -}}

{{/*
"ccloud.servingCert": a kubernetes.io/tls Secret .secret for .hosts: made by Helm
(ccloud.certData), or, with .Values.global.certManager.issuer.name set, a cert-manager
Certificate that writes that Secret (ca.crt included where the issuer gives one) and
renews it; the services reload a renewed certificate (shared/tls.py). A caller that needs
the CA too (a webhook's caBundle) passes .data, made once, so Secret and CA stay a pair.
*/}}
{{- define "ccloud.servingCert" -}}
{{- $issuer := ((.root.Values.global.certManager | default dict).issuer | default dict) -}}
{{- if $issuer.name }}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .secret }}
  labels:
    {{- include "ccloud.labels" .root | nindent 4 }}
spec:
  secretName: {{ .secret }}
  dnsNames:
    {{- toYaml .hosts | nindent 4 }}
  issuerRef:
    name: {{ $issuer.name }}
    kind: {{ $issuer.kind | default "Issuer" }}
    group: {{ $issuer.group | default "cert-manager.io" }}
{{- else }}
{{- $data := .data | default (include "ccloud.certData" . | fromYaml) }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .secret }}
  labels:
    {{- include "ccloud.labels" .root | nindent 4 }}
type: kubernetes.io/tls
data:
  ca.crt: {{ index $data "ca.crt" }}
  tls.crt: {{ index $data "tls.crt" }}
  tls.key: {{ index $data "tls.key" }}
{{- end }}
{{- end -}}

{{/*
"ccloud.tls": the service's own serving certificate (.Values.tls), Secret <fullname>-tls
for its Service's names and .Values.tls.extraNames (the address clients outside the
cluster use, e.g. the nodes reaching LCM's agent endpoint).
*/}}
{{- define "ccloud.tls" -}}
{{- $name := include "ccloud.fullname" . -}}
{{- $svc := printf "%s.%s.svc" $name .Release.Namespace -}}
{{- $hosts := concat (list $svc $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.cluster.local" $svc)) (.Values.tls.extraNames | default list) -}}
{{- include "ccloud.servingCert" (dict "root" . "secret" (printf "%s-tls" $name) "ca" (printf "%s-ca" $name) "hosts" $hosts "days" .Values.tls.certValidDays) }}
{{- end -}}
