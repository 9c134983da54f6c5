{{/*
"ccloud.auth" renders the Secret the gateway's users come from (services/api/auth.py's
tokens file) when no auth.existingSecret is named: an operator 'admin' whose token is
the Secret's admin-token key (only its sha256 is in tokens.yaml). Made once and kept
across upgrades (looked up and reused whole, so users added to it stay); name a Secret of
your own for more users, roles or an oidc: section.
*/}}
{{- define "ccloud.auth" -}}
{{- $name := printf "%s-auth" (include "ccloud.fullname" .) -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- $data := dict -}}
{{- if and $existing (hasKey ($existing.data | default dict) "tokens.yaml") -}}
{{- $data = $existing.data -}}
{{- else -}}
{{- $token := randAlphaNum 43 -}}
{{- $tokens := printf "users:\n  - name: admin\n    tokenSha256: %s\n    operator: true\n" (sha256sum $token) -}}
{{- $data = dict "admin-token" ($token | b64enc) "tokens.yaml" ($tokens | b64enc) -}}
{{- end -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
type: Opaque
data:
  {{- range $key, $value := $data }}
  {{ $key }}: {{ $value }}
  {{- end }}
{{- end -}}
