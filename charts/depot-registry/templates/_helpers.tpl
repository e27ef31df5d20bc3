{{/* Names, labels and the checks every rendering passes through. */}}

{{- define "depot-registry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "depot-registry.fullname" -}}
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

{{- define "depot-registry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "depot-registry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "depot-registry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "depot-registry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "depot-registry.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "depot-registry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "depot-registry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the admin token and keys: the user's, or the chart's. */}}
{{- define "depot-registry.authSecret" -}}
{{- default (printf "%s-auth" (include "depot-registry.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "depot-registry.databaseSecret" -}}
{{- default (printf "%s-database" (include "depot-registry.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "depot-registry.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
{{- end }}

{{- define "depot-registry.s3Secret" -}}
{{- default (printf "%s-s3" (include "depot-registry.fullname" .)) .Values.storage.s3.existingSecret }}
{{- end }}

{{- define "depot-registry.hasS3Secret" -}}
{{- if or .Values.storage.s3.existingSecret .Values.storage.s3.accessKeyId }}true{{ end }}
{{- end }}

{{- define "depot-registry.hasSigningKey" -}}
{{- if or .Values.auth.signingKey (and .Values.auth.existingSecret .Values.auth.existingSecretHasSigningKey) }}true{{ end }}
{{- end }}

{{- define "depot-registry.hasVerifyKey" -}}
{{- if or .Values.auth.verifyKey (and .Values.auth.existingSecret .Values.auth.existingSecretHasVerifyKey) }}true{{ end }}
{{- end }}

{{/* Whether the pods pause in preStop themselves (the sleep action, Kubernetes 1.30+); else the registry delays its own shutdown by as long. */}}
{{- define "depot-registry.preStopSleep" -}}
{{- if and (gt (int .Values.shutdown.preStopSeconds) 0) (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) }}true{{ end }}
{{- end }}

{{/* Values that cannot work together stop the install with a reason. */}}
{{- define "depot-registry.validate" -}}
{{- if eq .Values.mode "embedded" }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "mode embedded keeps SQLite and blobs on one volume: replicaCount must be 1, not %d (use mode production with PostgreSQL and S3 for more replicas)" (int .Values.replicaCount)) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "mode embedded runs exactly one replica: autoscaling.enabled needs mode production" }}
{{- end }}
{{- if eq .Values.gc.mode "cronjob" }}
{{- fail "mode embedded: gc.mode cronjob would open the SQLite database from a second pod; use gc.mode server" }}
{{- end }}
{{- else }}
{{- if not (or .Values.database.url .Values.database.existingSecret) }}
{{- fail "mode production needs PostgreSQL: set database.existingSecret (or database.url)" }}
{{- end }}
{{- if not (hasPrefix "s3://" .Values.storage.url) }}
{{- fail (printf "mode production needs S3: storage.url must be s3://BUCKET[/PREFIX], not %q" .Values.storage.url) }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if and .Values.auth.adminToken (not (hasPrefix "depot_admin_" .Values.auth.adminToken)) }}
{{- fail "auth.adminToken must start with depot_admin_" }}
{{- end }}
{{- end }}

{{/* What the registry and depot-gc both need: the backends, logging, collection's bounds. */}}
{{- define "depot-registry.env" -}}
- name: DEPOT_DATA_DIR
  value: /data
- name: DEPOT_LOG
  value: {{ .Values.logLevel | quote }}
- name: DEPOT_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: DEPOT_GC_GRACE
  value: {{ .Values.gc.graceSeconds | quote }}
- name: DEPOT_UPLOAD_TIMEOUT
  value: {{ .Values.gc.uploadTimeoutSeconds | quote }}
{{- if eq .Values.mode "production" }}
- name: DATABASE_URL_FILE
  value: /etc/depot/database/url
- name: DEPOT_STORAGE
  value: {{ .Values.storage.url | quote }}
{{- with .Values.storage.s3.endpoint }}
- name: DEPOT_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.s3.region }}
- name: DEPOT_S3_REGION
  value: {{ . | quote }}
{{- end }}
{{- if .Values.storage.s3.forcePathStyle }}
- name: DEPOT_S3_FORCE_PATH_STYLE
  value: "true"
{{- end }}
{{- if include "depot-registry.hasS3Secret" . }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "depot-registry.s3Secret" . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "depot-registry.s3Secret" . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- end }}
{{- end }}

{{/* `auth.oidc.issuers` as `--oidc-issuer`'s environment form: PROVIDER=URL, comma-separated, in a stable order. */}}
{{- define "depot-registry.oidcIssuers" -}}
{{- $entries := list -}}
{{- range $provider, $url := .Values.auth.oidc.issuers -}}
{{- $entries = append $entries (printf "%s=%s" $provider $url) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}
