{{- define "platform.labels" -}}
app.kubernetes.io/name: platform
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{/* Cluster-scoped objects are named after the release and namespace so two installs do not collide. */}}
{{- define "platform.clusterName" -}}
{{ .Release.Namespace }}-{{ .Release.Name }}
{{- end }}
