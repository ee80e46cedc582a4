{{/*
The name of every object the chart creates: the release name, so that
`helm install klaxon` makes ServiceAccount, ClusterRole, Deployment
`klaxon` (the tests rely on it).
*/}}
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

{{/*
The operator's ServiceAccount: serviceAccount.name, else the release's
name. With serviceAccount.create=false it must already exist.
*/}}
{{- define "klaxon.serviceAccountName" -}}
{{- default (include "klaxon.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/*
Where the Lease `klaxon` lives: leaderElection.namespace, else the
release namespace.
*/}}
{{- define "klaxon.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace -}}
{{- end -}}

{{/*
Whether replicas share shards through Leases (shards above 1).
*/}}
{{- define "klaxon.sharded" -}}
{{- if gt (int .Values.shards) 1 }}true{{ end -}}
{{- end -}}

{{/*
Whether leader election is used: leaderElection.enabled, unless sharded.
*/}}
{{- define "klaxon.leaderElection" -}}
{{- if and .Values.leaderElection.enabled (not (include "klaxon.sharded" .)) }}true{{ end -}}
{{- end -}}
