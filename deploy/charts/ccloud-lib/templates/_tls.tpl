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
"ccloud.tls": the service's own serving certificate (.Values.tls), a Secret <fullname>-tls
for its Service's names and .Values.tls.extraNames (the address clients outside the
cluster use, e.g. the nodes reaching LCM's agent endpoint).
*/}}
{{- define "ccloud.tls" -}}
{{- $name := include "ccloud.fullname" . -}}
{{- $svc := printf "%s.%s.svc" $name .Release.Namespace -}}
{{- $hosts := concat (list $svc $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.cluster.local" $svc)) (.Values.tls.extraNames | default list) -}}
{{- $data := include "ccloud.certData" (dict "root" . "secret" (printf "%s-tls" $name) "ca" (printf "%s-ca" $name) "hosts" $hosts "days" .Values.tls.certValidDays) | fromYaml -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}-tls
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
type: kubernetes.io/tls
data:
  ca.crt: {{ index $data "ca.crt" }}
  tls.crt: {{ index $data "tls.crt" }}
  tls.key: {{ index $data "tls.key" }}
{{- end -}}
