{{/*
The pod template, shared by the StatefulSet (sled mode) and the Deployment
(nats mode) so that both run the same container, probes, security context,
config, secrets and environment. What differs by mode: the data volume (the
StatefulSet's claim, or an emptyDir in nats mode), the NATS credentials and
CA volumes, whether the master key entry of an existing Secret may be
missing, and the spread over nodes.
*/}}
{{- define "line-adapter.podTemplate" -}}
{{- $fullname := include "line-adapter.fullname" . }}
{{- $secretName := include "line-adapter.secretName" . }}
{{- $existing := .Values.secrets.existingSecret }}
{{- $apiKeys := include "line-adapter.apiKeys" . }}
{{- $master := include "line-adapter.masterKeys" . | fromJson }}
{{- $nats := eq (include "line-adapter.storeMode" .) "nats" }}
{{- $natsValues := .Values.store.nats -}}
metadata:
  labels:
    {{- include "line-adapter.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "line-adapter.configToml" . | sha256sum }}
    {{- if not $existing }}
    checksum/secret: {{ printf "%s|%s|%s" $master.key $master.previous $apiKeys | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "line-adapter.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  # The service reads no Service links, and a release named line-adapter
  # would give it LINE_ADAPTER_*_SERVICE_HOST variables it must then skip.
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # Longer than the service's own drain (shutdown_grace_seconds), so a
  # stop is never cut short by SIGKILL.
  terminationGracePeriodSeconds: {{ include "line-adapter.terminationGracePeriodSeconds" . }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: line-adapter
      image: {{ include "line-adapter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - /etc/line-adapter/line-adapter.toml
      ports:
        - name: grpc
          containerPort: {{ .Values.ports.grpc }}
          protocol: TCP
        - name: http
          containerPort: {{ .Values.ports.http }}
          protocol: TCP
      env:
        {{- if or $existing $master.key }}
        {{- /* In nats mode the master key must come from the Secret (a key
        generated in the data dir would differ per pod and be lost on
        restart), so the entry of an existing Secret is required there. */}}
        - name: LINE_ADAPTER_MASTER_KEY
          valueFrom:
            secretKeyRef:
              name: {{ $secretName }}
              key: {{ .Values.secrets.keys.masterKey }}
              optional: {{ and (not (empty $existing)) (not $nats) }}
        {{- end }}
        {{- if or $existing $master.previous }}
        - name: LINE_ADAPTER_MASTER_KEY_PREVIOUS
          valueFrom:
            secretKeyRef:
              name: {{ $secretName }}
              key: {{ .Values.secrets.keys.masterKeyPrevious }}
              optional: {{ not (empty $existing) }}
        {{- end }}
        {{- if or $existing $apiKeys }}
        - name: LINE_ADAPTER_API_KEYS
          valueFrom:
            secretKeyRef:
              name: {{ $secretName }}
              key: {{ .Values.secrets.keys.apiKeys }}
              optional: {{ and (not (empty $existing)) .Values.auth.insecureNoAuth }}
        {{- end }}
        {{- if .Values.auth.insecureNoAuth }}
        - name: LINE_ADAPTER_INSECURE_NO_AUTH
          value: "true"
        {{- end }}
        {{- with .Values.logLevel }}
        - name: RUST_LOG
          value: {{ . | quote }}
        {{- end }}
        {{- range $name := keys (.Values.otel.env | default dict) | sortAlpha }}
        {{- if not (regexMatch "^OTEL_[A-Z0-9_]+$" $name) }}
        {{- fail (printf "line-adapter: otel.env.%s is not an OTEL_* variable: use extraEnv for other variables" $name) }}
        {{- end }}
        - name: {{ $name }}
          value: {{ get $.Values.otel.env $name | toString | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if .Values.probes.startup.enabled }}
      startupProbe:
        grpc:
          port: {{ .Values.ports.grpc }}
          service: {{ .Values.probes.grpcService | quote }}
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      {{- end }}
      {{- if .Values.probes.liveness.enabled }}
      livenessProbe:
        grpc:
          port: {{ .Values.ports.grpc }}
          service: {{ .Values.probes.grpcService | quote }}
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      {{- end }}
      {{- if .Values.probes.readiness.enabled }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: data
          mountPath: {{ .Values.persistence.mountPath }}
        - name: config
          mountPath: /etc/line-adapter
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if and $nats $natsValues.credsSecret.name }}
        - name: nats-creds
          mountPath: {{ include "line-adapter.natsCredsDir" . }}
          readOnly: true
        {{- end }}
        {{- if and $nats (or $natsValues.tlsCa.configMap $natsValues.tlsCa.secret) }}
        - name: nats-ca
          mountPath: {{ include "line-adapter.natsCaDir" . }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ $fullname }}
    # Scratch space under the read-only root filesystem; the service
    # itself writes only to the data dir.
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if $nats }}
    # nats mode: the state is on NATS JetStream; the data dir is scratch
    # space, private to the pod, holding the media it keeps: bounded by
    # media_max_bytes plus headroom (persistence.emptyDirSizeLimit).
    - name: data
      emptyDir:
        sizeLimit: {{ include "line-adapter.dataDirSizeLimit" . | quote }}
    {{- if $natsValues.credsSecret.name }}
    # The NATS user's .creds file (nats_creds_file).
    - name: nats-creds
      secret:
        secretName: {{ $natsValues.credsSecret.name }}
        defaultMode: 0440
        items:
          - key: {{ $natsValues.credsSecret.key }}
            path: {{ include "line-adapter.natsCredsFileName" . }}
    {{- end }}
    {{- if $natsValues.tlsCa.configMap }}
    # The CA bundle that verifies the NATS server (nats_tls_ca_file).
    - name: nats-ca
      configMap:
        name: {{ $natsValues.tlsCa.configMap }}
        defaultMode: 0444
        items:
          - key: {{ $natsValues.tlsCa.key }}
            path: {{ include "line-adapter.natsCaFileName" . }}
    {{- else if $natsValues.tlsCa.secret }}
    # The CA bundle that verifies the NATS server (nats_tls_ca_file).
    - name: nats-ca
      secret:
        secretName: {{ $natsValues.tlsCa.secret }}
        defaultMode: 0444
        items:
          - key: {{ $natsValues.tlsCa.key }}
            path: {{ include "line-adapter.natsCaFileName" . }}
    {{- end }}
    {{- else if not .Values.persistence.enabled }}
    # persistence.enabled=false: the store is lost with the pod.
    - name: data
      emptyDir:
        sizeLimit: {{ include "line-adapter.dataDirSizeLimit" . | quote }}
    {{- else if .Values.persistence.existingClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $spread := list }}
  {{- if $nats }}
  {{- $presets := list (list "nodes" "kubernetes.io/hostname") (list "zones" "topology.kubernetes.io/zone") }}
  {{- range $presets }}
  {{- $how := toString (get $.Values.topologySpread (index . 0)) }}
  {{- if ne $how "none" }}
  {{- $when := ternary "DoNotSchedule" "ScheduleAnyway" (eq $how "hard") }}
  {{- $selector := dict "matchLabels" (include "line-adapter.selectorLabels" $ | fromYaml) }}
  {{- $spread = append $spread (dict "maxSkew" 1 "topologyKey" (index . 1) "whenUnsatisfiable" $when "labelSelector" $selector "matchLabelKeys" (list "pod-template-hash")) }}
  {{- end }}
  {{- end }}
  {{- end }}
  {{- $spread = concat $spread (.Values.topologySpreadConstraints | default list) }}
  {{- with $spread }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
