{{/*
Helpers of the capirelay chart: names, labels, the rendered relay config and
the render-time checks (every `fail` of the chart lives in capirelay.validate).
*/}}

{{- define "capirelay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "capirelay.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "capirelay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "capirelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "capirelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "capirelay.labels" -}}
helm.sh/chart: {{ include "capirelay.chart" . }}
{{ include "capirelay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: relay
app.kubernetes.io/part-of: capirelay
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "capirelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "capirelay.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "capirelay.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The workload kind: StatefulSet with static membership, else Deployment. */}}
{{- define "capirelay.workloadKind" -}}
{{- if .Values.staticMembership.enabled -}}StatefulSet{{- else -}}Deployment{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the credentials. */}}
{{- define "capirelay.credentialsSecret" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-credentials" (include "capirelay.fullname" .)) -}}
{{- end -}}

{{/* Where the relay config is mounted, and the file the container is started with. */}}
{{- define "capirelay.configDir" -}}/etc/capirelay{{- end -}}
{{- define "capirelay.configPath" -}}{{ include "capirelay.configDir" . }}/config.yaml{{- end -}}
{{- define "capirelay.kafkaTLSDir" -}}/var/run/secrets/capirelay/kafka-tls{{- end -}}
{{- define "capirelay.registryTLSDir" -}}/var/run/secrets/capirelay/registry-tls{{- end -}}

{{/*
capirelay.seconds: a Go duration string ("30s", "1m30s", "500ms", "2h") as
whole seconds, rounded up. Fails on anything else.
*/}}
{{- define "capirelay.seconds" -}}
{{- $d := toString . | trim -}}
{{- if eq $d "0" -}}
0
{{- else -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(h|ms|m|s|us|µs|ns))+$" $d) -}}
{{- fail (printf "%q is not a Go duration (e.g. 30s, 1m30s, 500ms)" $d) -}}
{{- end -}}
{{- $unit := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(h|ms|m|s|us|µs|ns)" $d -1 -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 -}}
{{- $u := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . "" -}}
{{- $total = addf $total (mulf $n (get $unit $u)) -}}
{{- end -}}
{{- ceil $total | int -}}
{{- end -}}
{{- end -}}

{{/* The drain deadline in seconds (relay default 30s when empty). */}}
{{- define "capirelay.drainSeconds" -}}
{{- include "capirelay.seconds" (.Values.relay.drainTimeout | default "30s") -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the value set, or drain + margin. Always longer
than the drain deadline (capirelay.validate fails otherwise).
*/}}
{{- define "capirelay.terminationGracePeriodSeconds" -}}
{{- $drain := include "capirelay.drainSeconds" . | int -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $drain (int .Values.terminationGraceMarginSeconds) -}}
{{- else -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* The autoscaler in use: "hpa", "keda" or "". */}}
{{- define "capirelay.autoscaler" -}}
{{- if .Values.autoscaling.hpa.enabled -}}hpa{{- else if .Values.autoscaling.keda.enabled -}}keda{{- end -}}
{{- end -}}

{{/*
capirelay.validate: every render-time check. Included by the ConfigMap, so a
failing check fails `helm template`, `helm install` and `helm upgrade`.
*/}}
{{- define "capirelay.validate" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.brokers -}}
{{- fail "kafka.brokers is required: the seed brokers, host:port" -}}
{{- end -}}
{{- if not $v.kafka.deadLetterTopic -}}
{{- fail "kafka.deadLetterTopic is required: records that can never be accepted go there" -}}
{{- end -}}
{{- if kindIs "invalid" $v.kafka.partitions -}}
{{- fail "kafka.partitions is required: the number of partitions the group consumes (no replica count may exceed it)" -}}
{{- end -}}
{{- $partitions := int $v.kafka.partitions -}}
{{- if lt $partitions 1 -}}
{{- fail (printf "kafka.partitions must be at least 1, got %v" $v.kafka.partitions) -}}
{{- end -}}
{{- if and $v.autoscaling.hpa.enabled $v.autoscaling.keda.enabled -}}
{{- fail "autoscaling.hpa.enabled and autoscaling.keda.enabled are exclusive (KEDA manages its own HPA)" -}}
{{- end -}}
{{- range $name := list "hpa" "keda" -}}
{{- $a := index $v.autoscaling $name -}}
{{- if $a.enabled -}}
{{- if gt (int $a.maxReplicas) $partitions -}}
{{- fail (printf "autoscaling.%s.maxReplicas (%d) exceeds kafka.partitions (%d): a consumer group member without a partition only idles" $name (int $a.maxReplicas) $partitions) -}}
{{- end -}}
{{- if lt (int $a.minReplicas) 1 -}}
{{- fail (printf "autoscaling.%s.minReplicas must be at least 1" $name) -}}
{{- end -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "autoscaling.%s.minReplicas (%d) exceeds maxReplicas (%d)" $name (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (not (include "capirelay.autoscaler" .)) (gt (int $v.replicaCount) $partitions) -}}
{{- fail (printf "replicaCount (%d) exceeds kafka.partitions (%d): a consumer group member without a partition only idles" (int $v.replicaCount) $partitions) -}}
{{- end -}}
{{- if $v.autoscaling.keda.enabled -}}
{{- if not (has $v.autoscaling.keda.trigger (list "prometheus" "kafka")) -}}
{{- fail (printf "autoscaling.keda.trigger must be prometheus or kafka, got %q" $v.autoscaling.keda.trigger) -}}
{{- end -}}
{{- if and (eq $v.autoscaling.keda.trigger "prometheus") (not $v.autoscaling.keda.prometheus.serverAddress) -}}
{{- fail "autoscaling.keda.prometheus.serverAddress is required with the prometheus trigger" -}}
{{- end -}}
{{- end -}}
{{- $drain := include "capirelay.drainSeconds" . | int -}}
{{- $grace := include "capirelay.terminationGracePeriodSeconds" . | int -}}
{{- if le $grace $drain -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than relay.drainTimeout (%s = %ds): Kubernetes would kill the relay mid-drain" $grace ($v.relay.drainTimeout | default "30s") $drain) -}}
{{- end -}}
{{- if lt (int $v.terminationGraceMarginSeconds) 1 -}}
{{- fail "terminationGraceMarginSeconds must be at least 1" -}}
{{- end -}}
{{- $port := int $v.relay.port -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "relay.port must be 1..65535, got %v" $v.relay.port) -}}
{{- end -}}
{{- if not (has $v.rulesUpdate (list "rollout" "reload")) -}}
{{- fail (printf "rulesUpdate must be rollout or reload, got %q" $v.rulesUpdate) -}}
{{- end -}}
{{- if not $v.credentials.existingSecret -}}
{{- if not $v.credentials.apiKey -}}
{{- fail "set credentials.existingSecret (a Secret holding the API key) or credentials.apiKey" -}}
{{- end -}}
{{- if and $v.kafka.sasl.mechanism (not $v.credentials.saslPassword) -}}
{{- fail "kafka.sasl.mechanism is set: set credentials.existingSecret or credentials.saslPassword" -}}
{{- end -}}
{{- if and $v.schemaRegistry.enabled $v.schemaRegistry.usePassword (not $v.credentials.registryPassword) -}}
{{- fail "schemaRegistry.usePassword is set: set credentials.existingSecret or credentials.registryPassword" -}}
{{- end -}}
{{- if and $v.schemaRegistry.enabled $v.schemaRegistry.useToken (not $v.credentials.registryToken) -}}
{{- fail "schemaRegistry.useToken is set: set credentials.existingSecret or credentials.registryToken" -}}
{{- end -}}
{{- end -}}
{{- if $v.kafka.sasl.mechanism -}}
{{- if not (has (upper $v.kafka.sasl.mechanism) (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) -}}
{{- fail (printf "kafka.sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q" $v.kafka.sasl.mechanism) -}}
{{- end -}}
{{- end -}}
{{- if and $v.schemaRegistry.enabled (not $v.schemaRegistry.urls) -}}
{{- fail "schemaRegistry.urls is required when schemaRegistry.enabled" -}}
{{- end -}}
{{- include "capirelay.rulesCheck" . -}}
{{- end -}}

{{/* The rules value must be a YAML document with `topics` as its only key. */}}
{{- define "capirelay.rulesCheck" -}}
{{- if not (trim .Values.rules) -}}
{{- fail "rules is required: the topics section of a relay config, e.g. --set-file rules=deploy/examples/web-shop/config.yaml" -}}
{{- end -}}
{{- $r := fromYaml .Values.rules -}}
{{- if hasKey $r "Error" -}}
{{- fail (printf "rules is not valid YAML: %s" (get $r "Error")) -}}
{{- end -}}
{{- $extra := without (keys $r) "topics" -}}
{{- if $extra -}}
{{- fail (printf "rules may only hold the topics key (the chart writes kafka, api, relay and schema_registry from values), found: %s" (sortAlpha $extra | join ", ")) -}}
{{- end -}}
{{- if not (get $r "topics") -}}
{{- fail "rules has no topics: the relay would consume nothing" -}}
{{- end -}}
{{- end -}}

{{/* capirelay.tls renders a tls section (kafka.tls, schema_registry.tls). Arguments: list TLS-VALUES DIR. */}}
{{- define "capirelay.tlsSection" -}}
{{- $t := index . 0 -}}
{{- $dir := index . 1 -}}
{{- $s := dict "enabled" true -}}
{{- if $t.existingSecret -}}
{{- with $t.caKey }}{{ $_ := set $s "ca_file" (printf "%s/%s" $dir .) }}{{ end -}}
{{- with $t.certKey }}{{ $_ := set $s "cert_file" (printf "%s/%s" $dir .) }}{{ end -}}
{{- with $t.keyKey }}{{ $_ := set $s "key_file" (printf "%s/%s" $dir .) }}{{ end -}}
{{- end -}}
{{- with $t.serverName }}{{ $_ := set $s "server_name" . }}{{ end -}}
{{- if $t.insecureSkipVerify }}{{ $_ := set $s "insecure_skip_verify" true }}{{ end -}}
{{- toYaml $s -}}
{{- end -}}

{{/*
capirelay.sections: the kafka, api, relay and schema_registry sections of the
relay config, from values. Secrets appear only as file paths.
*/}}
{{- define "capirelay.sections" -}}
{{- $v := .Values -}}
{{- $creds := $v.credentials -}}
{{- $k := dict "brokers" $v.kafka.brokers "dead_letter_topic" $v.kafka.deadLetterTopic -}}
{{- with $v.kafka.clientId }}{{ $_ := set $k "client_id" . }}{{ end -}}
{{- with $v.kafka.group }}{{ $_ := set $k "group" . }}{{ end -}}
{{- with $v.kafka.start }}{{ $_ := set $k "start" . }}{{ end -}}
{{- if $v.staticMembership.enabled }}{{ $_ := set $k "instance_id_env" "POD_NAME" }}{{ end -}}
{{- if $v.kafka.tls.enabled -}}
{{- $_ := set $k "tls" (include "capirelay.tlsSection" (list $v.kafka.tls (include "capirelay.kafkaTLSDir" .)) | fromYaml) -}}
{{- end -}}
{{- if $v.kafka.sasl.mechanism -}}
{{- $_ := set $k "sasl" (dict "mechanism" (upper $v.kafka.sasl.mechanism) "username" $v.kafka.sasl.username "password_file" (printf "%s/%s" $creds.mountPath $creds.keys.saslPassword)) -}}
{{- end -}}
{{- $a := dict "key_file" (printf "%s/%s" $creds.mountPath $creds.keys.apiKey) -}}
{{- with $v.api.baseUrl }}{{ $_ := set $a "base_url" . }}{{ end -}}
{{- with $v.api.pixel }}{{ $_ := set $a "pixel" (toString .) }}{{ end -}}
{{- if $v.api.validateOnly }}{{ $_ := set $a "validate_only" true }}{{ end -}}
{{- with $v.api.integrationSource }}{{ $_ := set $a "integration_source" . }}{{ end -}}
{{- with $v.api.requestTimeout }}{{ $_ := set $a "request_timeout" . }}{{ end -}}
{{- with $v.api.initialBackoff }}{{ $_ := set $a "initial_backoff" . }}{{ end -}}
{{- with $v.api.maxBackoff }}{{ $_ := set $a "max_backoff" . }}{{ end -}}
{{- with $v.api.isolation }}{{ $_ := set $a "isolation" . }}{{ end -}}
{{- $r := dict "listen" (printf ":%d" (int $v.relay.port)) "drain_timeout" ($v.relay.drainTimeout | default "30s") -}}
{{- with $v.relay.maxBatchEvents }}{{ $_ := set $r "max_batch_events" (int .) }}{{ end -}}
{{- with $v.relay.maxBatchBytes }}{{ $_ := set $r "max_batch_bytes" (int64 .) }}{{ end -}}
{{- with $v.relay.linger }}{{ $_ := set $r "linger" . }}{{ end -}}
{{- with $v.relay.concurrency }}{{ $_ := set $r "concurrency" (int .) }}{{ end -}}
{{- with $v.relay.maxUnsettledRecords }}{{ $_ := set $r "max_unsettled_records" (int .) }}{{ end -}}
{{- with $v.relay.maxUnsettledBytes }}{{ $_ := set $r "max_unsettled_bytes" (int64 .) }}{{ end -}}
{{- with $v.relay.commitInterval }}{{ $_ := set $r "commit_interval" . }}{{ end -}}
{{- with $v.relay.revokeTimeout }}{{ $_ := set $r "revoke_timeout" . }}{{ end -}}
{{- with $v.relay.configRetryInterval }}{{ $_ := set $r "config_retry_interval" . }}{{ end -}}
{{- with $v.relay.eventAgeMargin }}{{ $_ := set $r "event_age_margin" . }}{{ end -}}
{{- with $v.relay.maxFuture }}{{ $_ := set $r "max_future" . }}{{ end -}}
{{- with $v.relay.logFormat }}{{ $_ := set $r "log_format" . }}{{ end -}}
{{- with $v.relay.logLevel }}{{ $_ := set $r "log_level" . }}{{ end -}}
{{- $cfg := dict "kafka" $k "api" $a "relay" $r -}}
{{- if $v.schemaRegistry.enabled -}}
{{- $sr := dict "urls" $v.schemaRegistry.urls -}}
{{- with $v.schemaRegistry.username }}{{ $_ := set $sr "username" . }}{{ end -}}
{{- if $v.schemaRegistry.usePassword }}{{ $_ := set $sr "password_file" (printf "%s/%s" $creds.mountPath $creds.keys.registryPassword) }}{{ end -}}
{{- if $v.schemaRegistry.useToken }}{{ $_ := set $sr "token_file" (printf "%s/%s" $creds.mountPath $creds.keys.registryToken) }}{{ end -}}
{{- with $v.schemaRegistry.timeout }}{{ $_ := set $sr "timeout" . }}{{ end -}}
{{- with $v.schemaRegistry.maxBytes }}{{ $_ := set $sr "max_bytes" (int64 .) }}{{ end -}}
{{- if $v.schemaRegistry.tls.enabled -}}
{{- $_ := set $sr "tls" (include "capirelay.tlsSection" (list $v.schemaRegistry.tls (include "capirelay.registryTLSDir" .)) | fromYaml) -}}
{{- end -}}
{{- $_ := set $cfg "schema_registry" $sr -}}
{{- end -}}
{{- range $i, $name := list "kafka" "api" "relay" "schema_registry" -}}
{{- if hasKey $cfg $name -}}
{{- if $i }}{{ "\n" }}{{ end -}}
{{- toYaml (dict $name (get $cfg $name)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
capirelay.config: the whole config file. The generated sections, then the rules
verbatim.
*/}}
{{- define "capirelay.config" -}}
# capirelay config rendered by the {{ include "capirelay.chart" . }} chart
# (release {{ .Release.Name }}). Generated sections from values; credentials are
# files under {{ .Values.credentials.mountPath }} (never inline).
{{ include "capirelay.sections" . }}
# ---- rules (values: rules) ----
{{ .Values.rules | trim }}
{{- end -}}

{{/*
capirelay.configChecksum: what rolls the pods when it changes. With
rulesUpdate=reload the rules are left out: the relay reloads them in place.
*/}}
{{- define "capirelay.configChecksum" -}}
{{- if eq .Values.rulesUpdate "reload" -}}
{{- include "capirelay.sections" . | sha256sum -}}
{{- else -}}
{{- include "capirelay.config" . | sha256sum -}}
{{- end -}}
{{- end -}}
