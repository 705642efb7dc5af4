{{/* The xApp descriptor (files/config-file.json) as a dict. */}}
{{- define "lighttune.descriptorJson" -}}
{{ .Files.Get "files/config-file.json" }}
{{- end -}}

{{/* xApp name from the descriptor (falls back to xapp_name, like the onboarder). */}}
{{- define "lighttune.name" -}}
{{- $d := include "lighttune.descriptorJson" . | fromJson -}}
{{- default $d.xapp_name $d.name -}}
{{- end -}}

{{/* <namespace>-<name>, e.g. ricxapp-lighttune-xapp. */}}
{{- define "lighttune.fullname" -}}
{{- printf "%s-%s" .Release.Namespace (include "lighttune.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lighttune.labels" -}}
app: {{ include "lighttune.fullname" . }}
release: {{ .Release.Name }}
app.kubernetes.io/name: {{ include "lighttune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lighttune.selectorLabels" -}}
app: {{ include "lighttune.fullname" . }}
release: {{ .Release.Name }}
{{- end -}}

{{/* Kubernetes probe from a descriptor probe (httpGet or exec). */}}
{{- define "lighttune.probe" -}}
{{- if .httpGet }}
httpGet:
  path: {{ .httpGet.path }}
  port: {{ int .httpGet.port }}
{{- else if .exec }}
exec:
  command:
{{ toYaml .exec.command | indent 4 }}
{{- end }}
initialDelaySeconds: {{ int .initialDelaySeconds }}
periodSeconds: {{ int .periodSeconds }}
{{- end -}}
