{{/* Names and labels; every Tickstream chart carries the same small helpers (self-contained).
Release `tickstream` gives `tickstream-api`, `tickstream-worker`, ...: the names the other
charts' defaults (TARGET_URL, BACKEND_URL) expect. */}}
{{- define "tickstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (trimPrefix "tickstream-" .Chart.Name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tickstream.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tickstream.labels" -}}
{{ include "tickstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tickstream
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
