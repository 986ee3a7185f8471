{{/* Chart name, at most 63 characters. */}}
{{- define "line-adapter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, plus the chart name unless the release name
contains it. Kept to 52 characters so that suffixes such as "-headless" and
the StatefulSet's pod and claim names stay within Kubernetes' limits.
*/}}
{{- define "line-adapter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "line-adapter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "line-adapter.labels" -}}
helm.sh/chart: {{ include "line-adapter.chart" . }}
{{ include "line-adapter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "line-adapter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "line-adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "line-adapter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "line-adapter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "line-adapter.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* The Secret the pod reads: the existing one, or the one the chart creates. */}}
{{- define "line-adapter.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "line-adapter.fullname" .) }}
{{- end }}

{{/*
The master key and previous master key of the Secret the chart creates, as
the dict {key, previous, source}, worked out once per render and kept in
.Values.secrets so that the Secret, the pod's checksum, the checks and the
notes all see the same (possibly random) key:

  1. secrets.masterKey, when given. When the chart's Secret in the cluster
     already holds a different key, that is refused, unless it is a
     rotation (secrets.masterKeyPrevious is the stored key): the data is
     sealed with the stored key, and a new one would lock the pod out.
  2. Else the key the chart's Secret already holds (`lookup`), so that an
     upgrade without secrets.masterKey keeps it; with it the stored
     previous key, so that an upgrade naming neither key leaves a rotation
     as it was.
  3. Else, on install with secrets.generateMasterKey, a new random key:
     32 bytes from crypto/rand, base64 (randBytes).
  4. Else none: sled mode then uses master.key in the data dir, as a
     release installed without a key always has (generating one on an
     upgrade would not match that data).

source is "values", "cluster", "generated" or "". With
secrets.existingSecret the chart manages no Secret: all empty.

`lookup` answers only when Helm talks to the cluster (install, upgrade,
--dry-run=server); `helm template` and --dry-run=client see no Secret, so
there every render of an install generates a new key (see the README,
"Master key").
*/}}
{{- define "line-adapter.masterKeys" -}}
{{- $secrets := .Values.secrets }}
{{- if not (hasKey $secrets "_resolvedMasterKeys") }}
{{- $resolved := dict "key" "" "previous" "" "source" "" }}
{{- if not $secrets.existingSecret }}
{{- $name := include "line-adapter.fullname" . }}
{{- $entry := $secrets.keys.masterKey }}
{{- $stored := dict }}
{{- with (lookup "v1" "Secret" .Release.Namespace $name) }}
{{- $stored = .data | default dict }}
{{- end }}
{{- $storedKey := get $stored $entry | default "" | b64dec }}
{{- $storedPrevious := get $stored $secrets.keys.masterKeyPrevious | default "" | b64dec }}
{{- $given := toString ($secrets.masterKey | default "") }}
{{- $givenPrevious := toString ($secrets.masterKeyPrevious | default "") }}
{{- if $given }}
{{- if and $storedKey (ne $given $storedKey) (ne $givenPrevious $storedKey) }}
{{- fail (printf "line-adapter: secrets.masterKey is not the master key the Secret %s/%s already holds (entry %s), which this release's data is sealed with: the pod would stop with \"master key does not match\". Leave secrets.masterKey unset to keep the stored key (upgrades read it from that Secret), or, to rotate it, give the new key as secrets.masterKey and the stored one as secrets.masterKeyPrevious (chart README, \"Master key\")" .Release.Namespace $name $entry) }}
{{- end }}
{{- $resolved = dict "key" $given "previous" $givenPrevious "source" "values" }}
{{- else if $storedKey }}
{{- $resolved = dict "key" $storedKey "previous" $storedPrevious "source" "cluster" }}
{{- else if and .Release.IsInstall $secrets.generateMasterKey }}
{{- $resolved = dict "key" (randBytes 32) "previous" "" "source" "generated" }}
{{- end }}
{{- end }}
{{- $_ := set $secrets "_resolvedMasterKeys" $resolved }}
{{- end }}
{{- toJson (get $secrets "_resolvedMasterKeys") }}
{{- end }}

{{/* The API keys from values as one comma list ("" when there are none). */}}
{{- define "line-adapter.apiKeys" -}}
{{- $keys := list }}
{{- range $i, $item := .Values.secrets.apiKeys }}
{{- $entry := "" }}
{{- if kindIs "string" $item }}
{{- $entry = $item }}
{{- else if kindIs "map" $item }}
{{- $key := toString (required (printf "line-adapter: secrets.apiKeys[%d] needs a `key`" $i) $item.key) }}
{{- $scopes := $item.scopes | default list }}
{{- if not (kindIs "slice" $scopes) }}
{{- fail (printf "line-adapter: secrets.apiKeys[%d].scopes must be a list of admin, send, subscribe, insight" $i) }}
{{- end }}
{{- $entry = $key }}
{{- if $scopes }}
{{- $entry = printf "%s:%s" $key (join "+" $scopes) }}
{{- end }}
{{- else }}
{{- fail (printf "line-adapter: secrets.apiKeys[%d] must be a string `key` or `key:scope+scope`, or a map {key, scopes}" $i) }}
{{- end }}
{{- if not (regexMatch "^[^,:\\s]+(:(admin|send|subscribe|insight)(\\+(admin|send|subscribe|insight))*)?$" $entry) }}
{{- fail (printf "line-adapter: secrets.apiKeys[%d] is not `key` or `key:scope+scope`: a key must not be empty or contain `,`, `:` or whitespace, and scopes are admin, send, subscribe, insight joined with `+`" $i) }}
{{- end }}
{{- $keys = append $keys $entry }}
{{- end }}
{{- join "," $keys }}
{{- end }}

{{/* Whether gRPC callers must authenticate: "true" or "". */}}
{{- define "line-adapter.hasApiKeys" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.apiKeys (get (.Values.config | default dict) "api_keys_file") }}true{{ end }}
{{- end }}

{{/* Seconds a drain may take: config.shutdown_grace_seconds, else the service's default (20). */}}
{{- define "line-adapter.shutdownGrace" -}}
{{- $grace := get (.Values.config | default dict) "shutdown_grace_seconds" }}
{{- if or (kindIs "invalid" $grace) (eq (toString $grace) "") }}20{{ else }}{{ int64 $grace }}{{ end }}
{{- end }}

{{/* Seconds a stop waits before draining: config.shutdown_delay_seconds, else the service's default (0). */}}
{{- define "line-adapter.shutdownDelay" -}}
{{- $delay := get (.Values.config | default dict) "shutdown_delay_seconds" }}
{{- if or (kindIs "invalid" $delay) (eq (toString $delay) "") }}0{{ else }}{{ int64 $delay }}{{ end }}
{{- end }}

{{- define "line-adapter.terminationGracePeriodSeconds" -}}
{{- $grace := add (include "line-adapter.shutdownGrace" . | int64) (include "line-adapter.shutdownDelay" . | int64) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $grace 10 }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds | int64 }}
{{- end }}
{{- end }}

{{/* public_base_url: config's, else https://<ingress host> when the Ingress has TLS. */}}
{{- define "line-adapter.publicBaseUrl" -}}
{{- $config := .Values.config | default dict }}
{{- if get $config "public_base_url" }}
{{- get $config "public_base_url" }}
{{- else if and .Values.ingress.enabled .Values.ingress.host .Values.ingress.tls }}
{{- printf "https://%s" .Values.ingress.host }}
{{- end }}
{{- end }}

{{/* media_max_bytes as the service will use it: config's, else its default (10 GiB). */}}
{{- define "line-adapter.mediaMaxBytes" -}}
{{- $max := get (.Values.config | default dict) "media_max_bytes" }}
{{- if or (kindIs "invalid" $max) (eq (toString $max) "") }}10737418240{{ else }}{{ int64 $max }}{{ end }}
{{- end }}

{{/* outbound_media_max_bytes (agents' uploads) as the service will use it: config's, else its default (10 GiB). */}}
{{- define "line-adapter.uploadsMaxBytes" -}}
{{- $max := get (.Values.config | default dict) "outbound_media_max_bytes" }}
{{- if or (kindIs "invalid" $max) (eq (toString $max) "") }}10737418240{{ else }}{{ int64 $max }}{{ end }}
{{- end }}

{{/* Bytes of files a pod keeps in its data dir: inbound media and agents' uploads. */}}
{{- define "line-adapter.keptFileBytes" -}}
{{- add (include "line-adapter.mediaMaxBytes" . | int64) (include "line-adapter.uploadsMaxBytes" . | int64) }}
{{- end }}

{{/*
Bytes of a Kubernetes quantity (a number with an optional suffix: Ki, Mi,
Gi, Ti, Pi, Ei or k, M, G, T, P, E), as a float; fails naming `value` when
it is none.
*/}}
{{- define "line-adapter.quantityBytes" -}}
{{- $name := index . 0 }}
{{- $raw := index . 1 }}
{{- $text := ternary (toString (int64 $raw)) (toString $raw) (kindIs "float64" $raw) }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$" $text) }}
{{- fail (printf "line-adapter: %s must be a Kubernetes quantity of bytes such as 12Gi or 11264Mi, not %q" $name $text) }}
{{- end }}
{{- $units := dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 }}
{{- $unit := regexFind "[A-Za-z]+$" $text }}
{{- mulf (float64 (trimSuffix $unit $text)) (get $units $unit) }}
{{- end }}

{{/*
sizeLimit of the data dir when it is an emptyDir (the kubelet evicts the pod
once the folder grows past it): persistence.emptyDirSizeLimit, else in nats
mode the kept files (media_max_bytes of inbound media plus
outbound_media_max_bytes of agents' uploads) plus headroom for what arrives
between two prunes (every 60 s) and the downloads and uploads in flight (up
to 300 MiB each): a tenth of the kept files, at least 1 GiB; in sled mode
persistence.size (what a claim would have had).
*/}}
{{- define "line-adapter.dataDirSizeLimit" -}}
{{- $limit := .Values.persistence.emptyDirSizeLimit }}
{{- if not (or (kindIs "invalid" $limit) (eq (toString $limit) "")) }}
{{- ternary (toString (int64 $limit)) (toString $limit) (kindIs "float64" $limit) }}
{{- else if eq (include "line-adapter.storeMode" .) "nats" }}
{{- $keptMib := div (add (include "line-adapter.keptFileBytes" . | int64) 1048575) 1048576 }}
{{- printf "%dMi" (add $keptMib (max 1024 (div (add $keptMib 9) 10))) }}
{{- else }}
{{- .Values.persistence.size | toString }}
{{- end }}
{{- end }}

{{/* The store mode, `sled` or `nats`; anything else fails. */}}
{{- define "line-adapter.storeMode" -}}
{{- $mode := dig "mode" "sled" (.Values.store | default dict) }}
{{- if not (has $mode (list "sled" "nats")) }}
{{- fail (printf "line-adapter: store.mode must be sled (an embedded sled database on a volume, one replica) or nats (NATS JetStream, any number of replicas), not %q" (toString $mode)) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
nats_url: store.nats.url (a comma list or a YAML list) as one comma list,
"" when empty. Refuses empty entries, whitespace inside an entry, and
credentials in a URL (it goes into the ConfigMap).
*/}}
{{- define "line-adapter.natsUrl" -}}
{{- $url := .Values.store.nats.url }}
{{- $entries := list }}
{{- if kindIs "slice" $url }}
{{- $entries = $url }}
{{- else if not (or (kindIs "invalid" $url) (eq (toString $url) "")) }}
{{- $entries = splitList "," (toString $url) }}
{{- end }}
{{- $urls := list }}
{{- range $i, $entry := $entries }}
{{- $entry = trim (toString $entry) }}
{{- if or (eq $entry "") (regexMatch "\\s" $entry) }}
{{- fail (printf "line-adapter: store.nats.url has an empty entry or one with whitespace inside (entry %d): give NATS URLs such as nats://nats:4222, several as a comma list" $i) }}
{{- end }}
{{- if contains "@" $entry }}
{{- fail "line-adapter: store.nats.url must not carry credentials (user:password@ or token@): it is written to the ConfigMap. Put the NATS user's .creds file in a Secret and name it in store.nats.credsSecret" }}
{{- end }}
{{- $urls = append $urls $entry }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/* Where the NATS .creds file and CA bundle are mounted (nats_creds_file, nats_tls_ca_file). */}}
{{- define "line-adapter.natsCredsDir" -}}/etc/line-adapter-nats/creds{{- end }}
{{- define "line-adapter.natsCredsFileName" -}}nats.creds{{- end }}
{{- define "line-adapter.natsCaDir" -}}/etc/line-adapter-nats/ca{{- end }}
{{- define "line-adapter.natsCaFileName" -}}ca.crt{{- end }}

{{/* "true" when the value is a whole number (an int, or a float without a fraction), else "". */}}
{{- define "line-adapter.isWholeNumber" -}}
{{- if or (kindIs "int" .) (kindIs "int64" .) (kindIs "uint64" .) }}true
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}true
{{- end }}
{{- end }}

{{/* One TOML value: string, whole number, boolean or list of those. */}}
{{- define "line-adapter.tomlValue" -}}
{{- $key := index . 0 }}
{{- $value := index . 1 }}
{{- if kindIs "string" $value }}
{{- toJson $value }}
{{- else if kindIs "bool" $value }}
{{- $value }}
{{- else if or (kindIs "int" $value) (kindIs "int64" $value) (kindIs "uint64" $value) }}
{{- $value }}
{{- else if kindIs "float64" $value }}
{{- if ne (float64 (int64 $value)) $value }}
{{- fail (printf "line-adapter: config.%s must be a whole number, not %v" $key $value) }}
{{- end }}
{{- int64 $value }}
{{- else if kindIs "slice" $value }}
{{- $items := list }}
{{- range $value }}
{{- $items = append $items (include "line-adapter.tomlValue" (list $key .)) }}
{{- end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else }}
{{- fail (printf "line-adapter: config.%s must be a string, a whole number, a boolean or a list (TOML tables are not settings)" $key) }}
{{- end }}
{{- end }}

{{/* line-adapter.toml as the service reads it. */}}
{{- define "line-adapter.configToml" -}}
# Rendered by the line-adapter Helm chart from its `config` value.
grpc_addr = {{ printf "0.0.0.0:%d" (int .Values.ports.grpc) | toJson }}
http_addr = {{ printf "0.0.0.0:%d" (int .Values.ports.http) | toJson }}
data_dir = {{ .Values.persistence.mountPath | toJson }}
{{- if eq (include "line-adapter.storeMode" .) "nats" }}
{{- $nats := .Values.store.nats }}
store = "nats"
nats_url = {{ include "line-adapter.natsUrl" . | toJson }}
nats_prefix = {{ toString $nats.prefix | toJson }}
nats_replicas = {{ int64 $nats.replicas }}
{{- if $nats.credsSecret.name }}
nats_creds_file = {{ printf "%s/%s" (include "line-adapter.natsCredsDir" .) (include "line-adapter.natsCredsFileName" .) | toJson }}
{{- end }}
{{- if or $nats.tlsCa.configMap $nats.tlsCa.secret }}
nats_tls_ca_file = {{ printf "%s/%s" (include "line-adapter.natsCaDir" .) (include "line-adapter.natsCaFileName" .) | toJson }}
{{- end }}
{{- end }}
{{- $publicBaseUrl := include "line-adapter.publicBaseUrl" . }}
{{- if $publicBaseUrl }}
public_base_url = {{ $publicBaseUrl | toJson }}
{{- end }}
{{- $config := .Values.config | default dict }}
{{- range $key := keys $config | sortAlpha }}
{{- $value := get $config $key }}
{{- if and (ne $key "public_base_url") (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
{{ $key }} = {{ include "line-adapter.tomlValue" (list $key $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Refuses config.* values the service would refuse: keys that are no setting,
values of the wrong kind or out of range, URLs without http(s):// or a host.
values.schema.json checks the same kinds and ranges first (and at lint
time); these checks are what is left when it is skipped
(--skip-schema-validation), and say why. Plus what the schema cannot see:
credentials in URLs (config goes into a ConfigMap), query or fragment of a
base URL, the TLS certificate without its key, TLS with the gRPC probes.
Called with (list $ $config); the chart's own settings were refused before.
*/}}
{{- define "line-adapter.validateConfig" -}}
{{- $root := index . 0 }}
{{- $config := index . 1 }}
{{- /* setting: minimum, maximum (-1: none), unit and why */}}
{{- $integers := dict
  "line_request_timeout_ms" (list 100 60000 "milliseconds; LINE answers in well under a second")
  "outbox_max_backoff_ms" (list 100 600000 "milliseconds")
  "webhook_body_limit" (list 1024 67108864 "bytes; below 1 KiB not even LINE's Verify request passes")
  "shutdown_grace_seconds" (list 0 3600 "seconds")
  "shutdown_delay_seconds" (list 0 600 "seconds")
  "event_retention_seconds" (list 60 -1 "seconds")
  "event_retention_max_events" (list 0 -1 "events; 0 is no count limit")
  "dedupe_window_seconds" (list 3600 -1 "seconds; LINE redelivers for a while after a failure")
  "media_retention_seconds" (list 0 -1 "seconds")
  "media_max_bytes" (list 0 -1 "bytes")
  "outbound_media_retention_seconds" (list 1 -1 "seconds; uploads must stay until LINE fetches them")
  "outbound_media_max_bytes" (list 1 -1 "bytes")
  "store_cache_mib" (list 16 65536 "MiB")
  "store_min_free_bytes" (list 0 -1 "bytes")
  "store_min_free_percent" (list 0 50 "percent of the data dir's filesystem")
  "token_refresh_margin_seconds" (list 0 -1 "seconds")
  "token_v2_1_lifetime_seconds" (list 60 2592000 "seconds; LINE allows at most 30 days") }}
{{- $urls := dict
  "public_base_url" "https://line.example.com"
  "line_api_base" "https://api.line.me"
  "line_data_api_base" "https://api-data.line.me"
  "line_proxy" "http://egress-proxy.network:3128" }}
{{- $paths := list "grpc_tls_cert_file" "grpc_tls_key_file" "api_keys_file" }}
{{- $booleans := list "lookup_profiles" }}
{{- /* line_rate_limits: the endpoints it names (line::pace::Endpoint). */}}
{{- $rateNames := list "reply" "push" "multicast" "broadcast" "narrowcast" "profile" "loading" "webhook_endpoint" "webhook_test" "other" }}
{{- $known := concat (keys $integers) (keys $urls) $paths $booleans (list "log_format" "line_rate_limits") | sortAlpha }}
{{- range $key := keys $config | sortAlpha }}
{{- $value := get $config $key }}
{{- if not (has $key $known) }}
{{- /* A misspelling that swaps letters (log_fromat) has the letters of the setting. */}}
{{- $letters := splitList "" $key | sortAlpha | join "" }}
{{- $near := "" }}
{{- range $known }}
{{- if eq (splitList "" . | sortAlpha | join "") $letters }}{{ $near = . }}{{ end }}
{{- end }}
{{- fail (printf "line-adapter: config.%s is not a setting of line-adapter%s: the keys of config are the setting names of the project README's Settings table (%s)" $key (ternary (printf " (did you mean config.%s?)" $near) "" (ne $near "")) (join ", " $known)) }}
{{- end }}
{{- if not (or (kindIs "invalid" $value) (eq (toString $value) "")) }}
{{- if hasKey $integers $key }}
{{- $range := get $integers $key }}
{{- $min := index $range 0 | int64 }}
{{- $max := index $range 1 | int64 }}
{{- $bounds := ternary (printf "from %d to %d" $min $max) (printf "of at least %d" $min) (ge $max 0) }}
{{- if or (not (include "line-adapter.isWholeNumber" $value)) (lt (int64 $value) $min) (and (ge $max 0) (gt (int64 $value) $max)) }}
{{- fail (printf "line-adapter: config.%s must be a whole number %s (%s), not %s" $key $bounds (index $range 2) (ternary (printf "%q" $value) (toString $value) (kindIs "string" $value))) }}
{{- end }}
{{- else if has $key $booleans }}
{{- if not (kindIs "bool" $value) }}
{{- fail (printf "line-adapter: config.%s must be true or false, not %v" $key $value) }}
{{- end }}
{{- else if not (kindIs "string" $value) }}
{{- fail (printf "line-adapter: config.%s must be text (a string), not %v" $key $value) }}
{{- else if eq $key "log_format" }}
{{- if not (has $value (list "text" "json")) }}
{{- fail (printf "line-adapter: config.log_format must be text or json, not %q" $value) }}
{{- end }}
{{- else if eq $key "line_rate_limits" }}
{{- $seen := list }}
{{- range $entry := splitList "," $value }}
{{- $entry = trim $entry }}
{{- if $entry }}
{{- $name := trim (regexReplaceAll "=.*$" $entry "") }}
{{- if not (regexMatch "^[a-z_]+\\s*=\\s*[0-9]+\\s*/\\s*(s|min|h)$" $entry) }}
{{- fail (printf "line-adapter: config.line_rate_limits must be comma-separated name=count/unit entries (unit s, min or h), e.g. push=2000/s,broadcast=60/h, and %q is not one" $entry) }}
{{- else if not (has $name $rateNames) }}
{{- fail (printf "line-adapter: config.line_rate_limits names %q, which is not an endpoint with a rate limit: the endpoints are %s" $name (join ", " $rateNames)) }}
{{- else if has $name $seen }}
{{- fail (printf "line-adapter: config.line_rate_limits gives %q twice" $name) }}
{{- end }}
{{- $count := regexFind "[0-9]+" $entry | int64 }}
{{- if or (lt $count 1) (gt $count 1000000) }}
{{- fail (printf "line-adapter: config.line_rate_limits: the count of %q must be 1-1000000" $entry) }}
{{- end }}
{{- $seen = append $seen $name }}
{{- end }}
{{- end }}
{{- else if hasKey $urls $key }}
{{- /* Values with credentials are not quoted in messages. */}}
{{- $shown := ternary "" (printf ", not %q" $value) (contains "@" $value) }}
{{- if not (regexMatch "^https?://" $value) }}
{{- fail (printf "line-adapter: config.%s must be an http:// or https:// URL, e.g. %s%s (the scheme is not optional)" $key (get $urls $key) $shown) }}
{{- else if regexMatch "^https?://[^/?#]*@" $value }}
{{- if eq $key "line_proxy" }}
{{- fail "line-adapter: config.line_proxy must not carry credentials here: config is written to the ConfigMap, which anyone who may read ConfigMaps in the namespace can read. Give such a proxy URL as LINE_ADAPTER_LINE_PROXY from a Secret instead (extraEnv with valueFrom.secretKeyRef)" }}
{{- end }}
{{- fail (printf "line-adapter: config.%s must not carry credentials (user:password@)" $key) }}
{{- else if not (regexMatch "^https?://[^/?#]+" $value) }}
{{- fail (printf "line-adapter: config.%s must name a host, e.g. %s%s" $key (get $urls $key) $shown) }}
{{- else if and (ne $key "line_proxy") (regexMatch "[?#]" $value) }}
{{- fail (printf "line-adapter: config.%s is a base URL: no query (?) or fragment (#)%s" $key $shown) }}
{{- end }}
{{- else if has $key $paths }}
{{- if not (hasPrefix "/" $value) }}
{{- fail (printf "line-adapter: config.%s must be an absolute path in the container (a file mounted with extraVolumes and extraVolumeMounts), not %q" $key $value) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $cert := get $config "grpc_tls_cert_file" | default "" }}
{{- $tlsKey := get $config "grpc_tls_key_file" | default "" }}
{{- if and $cert (not $tlsKey) }}
{{- fail "line-adapter: config.grpc_tls_cert_file needs config.grpc_tls_key_file, the certificate chain's private key" }}
{{- else if and $tlsKey (not $cert) }}
{{- fail "line-adapter: config.grpc_tls_key_file needs config.grpc_tls_cert_file, the certificate chain of that key" }}
{{- else if and $cert (or $root.Values.probes.startup.enabled $root.Values.probes.liveness.enabled) }}
{{- fail "line-adapter: config.grpc_tls_cert_file turns on TLS for gRPC, and Kubernetes' grpc probes speak plain gRPC only: set probes.startup.enabled=false and probes.liveness.enabled=false (readiness stays on HTTP), or the pod never starts" }}
{{- end }}
{{- end }}

{{/* Refuses values the service would refuse, or that break it, with a message naming the value. */}}
{{- define "line-adapter.validate" -}}
{{- if not (.Values.image.repository | default "" | toString | trim) }}
{{- fail "line-adapter: image.repository must be set: there is no public line-adapter image. Build it with the Dockerfile at the repository root, push it to a registry your cluster pulls from, and pass it, e.g. --set image.repository=registry.example.com/weiyu/line-adapter (chart README, \"The image\"; for kind or minikube, load it and set image.repository=line-adapter)" }}
{{- end }}
{{- $mode := include "line-adapter.storeMode" . }}
{{- if eq $mode "sled" }}
{{- if ne (int .Values.replicaCount) 1 }}
{{- fail (printf "line-adapter: replicaCount must be 1, not %v: with store.mode=sled the data dir is a sled database, which only one process may open (see values.yaml); several replicas need store.mode=nats" .Values.replicaCount) }}
{{- end }}
{{- else }}
{{- $nats := .Values.store.nats }}
{{- if or (not (include "line-adapter.isWholeNumber" .Values.replicaCount)) (lt (int64 .Values.replicaCount) 1) }}
{{- fail (printf "line-adapter: replicaCount must be a whole number of at least 1 with store.mode=nats, not %v" .Values.replicaCount) }}
{{- end }}
{{- if not (include "line-adapter.natsUrl" .) }}
{{- fail "line-adapter: store.mode=nats needs store.nats.url, the NATS server URL(s), e.g. nats://nats:4222 (a NATS server with JetStream enabled; see the chart README)" }}
{{- end }}
{{- if not (regexMatch "^[A-Za-z0-9_-]+$" (toString $nats.prefix)) }}
{{- fail (printf "line-adapter: store.nats.prefix (nats_prefix) must be letters, digits, `_` and `-` (it begins NATS stream, bucket and consumer names), not %q" (toString $nats.prefix)) }}
{{- end }}
{{- if or (not (include "line-adapter.isWholeNumber" $nats.replicas)) (lt (int64 $nats.replicas) 1) (gt (int64 $nats.replicas) 5) }}
{{- fail (printf "line-adapter: store.nats.replicas (nats_replicas, JetStream replicas of the streams and buckets) must be a whole number from 1 to 5, not %v" $nats.replicas) }}
{{- end }}
{{- if not (or (include "line-adapter.masterKeys" . | fromJson).key .Values.secrets.existingSecret) }}
{{- fail "line-adapter: store.mode=nats needs the master key from a Secret, and neither values nor the release's Secret in the cluster hold one (the chart generates one only at install, with secrets.generateMasterKey): set secrets.masterKey (the key the data on NATS is sealed with; a new one: `openssl rand -hex 32`) or secrets.existingSecret (with the entry secrets.keys.masterKey, default `master-key`). nats mode keeps no volume, so a key generated in the data dir would differ per pod and be lost on restart" }}
{{- end }}
{{- if .Values.persistence.existingClaim }}
{{- fail "line-adapter: persistence.existingClaim is for store.mode=sled; with store.mode=nats the state is on NATS and the data dir is an emptyDir per pod" }}
{{- end }}
{{- if and $nats.credsSecret.name (not $nats.credsSecret.key) }}
{{- fail "line-adapter: store.nats.credsSecret.key must name the Secret's entry holding the .creds file" }}
{{- end }}
{{- if and $nats.tlsCa.configMap $nats.tlsCa.secret }}
{{- fail "line-adapter: store.nats.tlsCa: set configMap or secret, not both" }}
{{- end }}
{{- if and (or $nats.tlsCa.configMap $nats.tlsCa.secret) (not $nats.tlsCa.key) }}
{{- fail "line-adapter: store.nats.tlsCa.key must name the entry holding the CA bundle" }}
{{- end }}
{{- end }}
{{- range $key := list "nodes" "zones" }}
{{- $how := get ($.Values.topologySpread | default dict) $key }}
{{- if not (has $how (list "soft" "hard" "none")) }}
{{- fail (printf "line-adapter: topologySpread.%s must be soft, hard or none, not %v" $key $how) }}
{{- end }}
{{- end }}
{{- $config := .Values.config | default dict }}
{{- if not (kindIs "map" $config) }}
{{- fail "line-adapter: config must be a map of setting names to values" }}
{{- end }}
{{- $owned := dict "grpc_addr" "ports.grpc" "http_addr" "ports.http" "data_dir" "persistence.mountPath" "insecure_no_auth" "auth.insecureNoAuth" "api_keys" "secrets.apiKeys (or secrets.existingSecret)" "master_key" "secrets.masterKey (or secrets.existingSecret)" "master_key_previous" "secrets.masterKeyPrevious (or secrets.existingSecret)" }}
{{- $_ := merge $owned (dict "store" "store.mode" "nats_url" "store.nats.url" "nats_prefix" "store.nats.prefix" "nats_replicas" "store.nats.replicas" "nats_creds_file" "store.nats.credsSecret" "nats_tls_ca_file" "store.nats.tlsCa") }}
{{- range $key := keys $owned | sortAlpha }}
{{- if hasKey $config $key }}
{{- fail (printf "line-adapter: config.%s is set by the chart: use %s instead" $key (get $owned $key)) }}
{{- end }}
{{- end }}
{{- include "line-adapter.validateConfig" (list . $config) }}
{{- if and (not (include "line-adapter.hasApiKeys" .)) (not .Values.auth.insecureNoAuth) }}
{{- fail "line-adapter: no API keys for gRPC. Set secrets.apiKeys (e.g. --set 'secrets.apiKeys={KEY}', KEY from `openssl rand -hex 32`) or secrets.existingSecret (a Secret with the keys in its entry secrets.keys.apiKeys, default `api-keys`), or set auth.insecureNoAuth=true to serve gRPC unauthenticated (only where something else, e.g. a mesh, authenticates callers). Without keys the service refuses to listen on the pod's address." }}
{{- end }}
{{- $_ := include "line-adapter.apiKeys" . }}
{{- /* As the service reads it: 64 hex digits, or standard base64 with its padding. */}}
{{- $hexOrBase64 := "^([0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=)$" }}
{{- if and .Values.secrets.masterKey (not (regexMatch $hexOrBase64 (toString .Values.secrets.masterKey))) }}
{{- fail "line-adapter: secrets.masterKey must be 32 bytes as 64 hex digits or as standard base64 with its `=` (e.g. from `openssl rand -hex 32`)" }}
{{- end }}
{{- if .Values.secrets.masterKeyPrevious }}
{{- if not (regexMatch $hexOrBase64 (toString .Values.secrets.masterKeyPrevious)) }}
{{- fail "line-adapter: secrets.masterKeyPrevious must be 32 bytes as 64 hex digits or as standard base64 with its `=`" }}
{{- end }}
{{- if not .Values.secrets.masterKey }}
{{- fail "line-adapter: secrets.masterKeyPrevious needs secrets.masterKey (the new key) during a master key rotation" }}
{{- end }}
{{- end }}
{{- if and .Values.secrets.existingSecret (or .Values.secrets.masterKey .Values.secrets.masterKeyPrevious .Values.secrets.apiKeys) }}
{{- fail "line-adapter: secrets.existingSecret is set, so secrets.masterKey, secrets.masterKeyPrevious and secrets.apiKeys must be empty: put them in that Secret" }}
{{- end }}
{{- $grace := add (include "line-adapter.shutdownGrace" . | int64) (include "line-adapter.shutdownDelay" . | int64) }}
{{- $period := include "line-adapter.terminationGracePeriodSeconds" . | int64 }}
{{- if le $period $grace }}
{{- fail (printf "line-adapter: terminationGracePeriodSeconds (%d) must exceed config.shutdown_delay_seconds + config.shutdown_grace_seconds (%d), or Kubernetes kills the pod before its drain ends" $period $grace) }}
{{- end }}
{{- if and (eq $mode "sled") .Values.persistence.enabled (not .Values.persistence.existingClaim) (not .Values.persistence.size) }}
{{- fail "line-adapter: persistence.size must be set" }}
{{- end }}
{{- if or (eq $mode "nats") (not .Values.persistence.enabled) }}
{{- $sizeLimit := include "line-adapter.dataDirSizeLimit" . }}
{{- $limitBytes := include "line-adapter.quantityBytes" (list "persistence.emptyDirSizeLimit" $sizeLimit) | float64 }}
{{- /* In sled mode the emptyDir is sized like the claim (persistence.size), whose
default (20Gi) predates uploads and cannot grow on upgrade: it is checked
against the media alone there, as before. */}}
{{- $keptBytes := include "line-adapter.keptFileBytes" . | float64 }}
{{- if ne $mode "nats" }}
{{- $keptBytes = include "line-adapter.mediaMaxBytes" . | float64 }}
{{- end }}
{{- if le $limitBytes $keptBytes }}
{{- fail (printf "line-adapter: the data dir's emptyDir sizeLimit (%s, persistence.emptyDirSizeLimit) must exceed config.media_max_bytes + config.outbound_media_max_bytes (%.0f bytes), with room to spare: the data dir holds the kept media and agents' uploads, and the kubelet evicts the pod when it grows past its sizeLimit. Raise the limit (empty in nats mode: both plus a tenth, at least 1 GiB), or lower config.media_max_bytes or config.outbound_media_max_bytes" $sizeLimit $keptBytes) }}
{{- end }}
{{- end }}
{{- if not (hasPrefix "/" (toString .Values.persistence.mountPath)) }}
{{- fail "line-adapter: persistence.mountPath must be an absolute path" }}
{{- end }}
{{- end }}
