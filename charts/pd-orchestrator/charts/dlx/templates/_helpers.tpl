{{/*
Helpers of the dlx subchart. Every named template is prefixed with "dlx." because Helm shares one template
namespace between the umbrella chart and all of its subcharts.
*/}}

{{/* The chart name, overridable with .Values.nameOverride. */}}
{{- define "dlx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of this component's objects: .Values.fullnameOverride, else "<release>-<chart>" (just
"<release>" when the release name already contains the chart name). Truncated to 63 characters (DNS label).
*/}}
{{- define "dlx.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<name>-<version>" for the helm.sh/chart label. */}}
{{- define "dlx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of this component. */}}
{{- define "dlx.labels" -}}
helm.sh/chart: {{ include "dlx.chart" . }}
{{ include "dlx.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | toString | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: proxy
app.kubernetes.io/part-of: pd-orchestrator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select this component's Pods (immutable once a Deployment exists: keep them minimal). */}}
{{- define "dlx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dlx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the Pods run as. */}}
{{- define "dlx.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dlx.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container image reference; an empty tag means the chart's appVersion. */}}
{{- define "dlx.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* The address the DLX listens on: 0.0.0.0, or the Pod's IP (env POD_IP) with listenOnPodIP. */}}
{{- define "dlx.listenHost" -}}
{{- ternary "$(POD_IP)" "0.0.0.0" (.Values.listenOnPodIP | default false) }}
{{- end }}

{{/* PROXY_ADDR: the proxy port and every extra proxy port, comma-separated. */}}
{{- define "dlx.proxyAddrs" -}}
{{- $host := include "dlx.listenHost" . }}
{{- $addrs := list (printf "%s:%v" $host .Values.proxyPort) }}
{{- range .Values.extraProxyPorts }}
{{- $addrs = append $addrs (printf "%s:%v" $host .port) }}
{{- end }}
{{- join "," $addrs }}
{{- end }}
