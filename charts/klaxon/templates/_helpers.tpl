{{- define "klaxon.name" -}}
{{- default .Chart.Name .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "klaxon.labels" -}}
app.kubernetes.io/name: klaxon
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "klaxon.selectorLabels" -}}
app.kubernetes.io/name: klaxon
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
