{{/*
"ccloud.ingress": the service's first port behind an Ingress (.Values.ingress: host, TLS
Secret, class, annotations). TLS ends at the ingress controller, which needs a read
timeout of minutes for watches and the events websocket.
*/}}
{{- define "ccloud.ingress" -}}
{{- $port := "" -}}
{{- range $name, $number := .Values.service.ports }}{{ if not $port }}{{ $port = $name }}{{ end }}{{ end -}}
{{- if not .Values.ingress.host }}
{{- fail "ingress.enabled needs ingress.host (the name clients use)" }}
{{- end }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "ccloud.fullname" . }}
  labels:
    {{- include "ccloud.labels" . | nindent 4 }}
  {{- with .Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- if .Values.ingress.tlsSecret }}
  tls:
    - hosts: [{{ .Values.ingress.host | quote }}]
      secretName: {{ .Values.ingress.tlsSecret }}
  {{- end }}
  rules:
    - host: {{ .Values.ingress.host | quote }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {{ include "ccloud.fullname" . }}
                port:
                  name: {{ $port }}
{{- end -}}
