#!/usr/bin/env python3
"""What scripts/check-deploy.sh checks in the rendered manifests beyond their schemas.

    check-deploy.py write-prometheusrule
        makes deploy/kubernetes/components/monitoring/prometheusrule.yaml from
        deploy/prometheus/herald-rules.yml (the one source of the alert rules).
    check-deploy.py check OUT RENDERED.yaml...
        checks every rendered kustomization (one file each), and leaves in OUT what the next
        steps validate: builtin/NAME.yaml (the documents of Kubernetes' own kinds, for
        kubernetes-validate), crds.json (the custom resources, for check-deploy-crds.mjs) and
        rules/NAME.yml (each PrometheusRule's spec, for promtool).

Each problem is printed as `ERROR file: kind/name: what`; the exit status is 1 if there was one.
Needs PyYAML (kubernetes-validate brings it).
"""

import json
import os
import re
import sys

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RULES = os.path.join(ROOT, "deploy/prometheus/herald-rules.yml")
DASHBOARD = os.path.join(ROOT, "deploy/grafana/herald-dashboard.json")
DOCKERFILE = os.path.join(ROOT, "deploy/Dockerfile")
PROMETHEUSRULE = os.path.join(ROOT, "deploy/kubernetes/components/monitoring/prometheusrule.yaml")
CLI = os.path.join(ROOT, "crates/herald/src/cli.rs")
WORKER_CONFIG = os.path.join(ROOT, "crates/herald-delivery-worker/src/config.rs")

# Time a pod needs after its drain to give its leases back and exit (a few statements).
EXIT_MARGIN_S = 5

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# The volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}

errors = []
notes = []  # terminationGracePeriodSeconds against the drains, for the summary


def error(where, what):
    errors.append(f"ERROR {where}: {what}")


def kn(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


# ---------------------------------------------------------------------------------------------
# The PrometheusRule, made from the rule file.

def prometheusrule():
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "herald", "labels": {"app.kubernetes.io/name": "herald"}},
        "spec": rules,
    }


def write_prometheusrule():
    text = (
        "# Made from deploy/prometheus/herald-rules.yml by `scripts/check-deploy.sh --write`: change\n"
        "# that file, then run it. scripts/check-deploy.sh fails when the two differ.\n"
        + yaml.safe_dump(prometheusrule(), sort_keys=False, width=100, allow_unicode=True)
    )
    with open(PROMETHEUSRULE, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(PROMETHEUSRULE, ROOT)}")


# ---------------------------------------------------------------------------------------------
# Herald's settings, as the pods would see them.

UNITS = {
    "ns": 1e-9, "nsec": 1e-9, "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}


def seconds(text):
    """A duration as Herald reads it (humantime: `20s`, `1m 30s`, `500ms`), in seconds."""
    parts = re.findall(r"(\d+)\s*([a-zA-Z]+)", text)
    if not parts or re.sub(r"[\d\sa-zA-Z]", "", text) or any(u not in UNITS for _, u in parts):
        raise ValueError(f"`{text}` is not a duration this check can read")
    return sum(int(n) * UNITS[u] for n, u in parts)


def source_default(path, pattern, what):
    with open(path) as f:
        m = re.search(pattern, f.read())
    if not m:
        error(os.path.relpath(path, ROOT), f"cannot find the default of {what} any more: update scripts/check-deploy.py")
        return None
    return m.group(1)


def defaults():
    return {
        "HERALD_SHUTDOWN_GRACE": source_default(
            WORKER_CONFIG, r'const SHUTDOWN_GRACE: &\'static str = "([^"]+)"', "HERALD_SHUTDOWN_GRACE"),
        "HERALD_REQUEST_TIMEOUT": source_default(
            CLI, r'env = "HERALD_REQUEST_TIMEOUT", default_value = "([^"]+)"', "HERALD_REQUEST_TIMEOUT"),
    }


def container_env(container, configmaps, where):
    """The container's environment from envFrom ConfigMaps then env (env wins), values only."""
    env = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            cm = configmaps.get(ref.get("name"))
            if cm is None:
                if not ref.get("optional"):
                    error(where, f"envFrom names the ConfigMap {ref.get('name')}, which is not in the output")
                continue
            env.update({source.get("prefix", "") + k: v for k, v in (cm.get("data") or {}).items()})
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = None  # from a Secret or a field: not known here
        ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
        if ref and ref.get("name") not in configmaps and not ref.get("optional"):
            error(where, f"{var['name']} names the ConfigMap {ref.get('name')}, which is not in the output")
    return env


# ---------------------------------------------------------------------------------------------
# Pods.

def pod_template(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in POD_TEMPLATE_KINDS:
        return spec.get("template")
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    if kind == "Pod":
        return doc
    return None


def dockerfile_user():
    with open(DOCKERFILE) as f:
        users = re.findall(r"^USER\s+(\S+)", f.read(), flags=re.M)
    if not users:
        error("deploy/Dockerfile", "no USER: the image would run as root")
        return None, None
    user, _, group = users[-1].partition(":")
    if not user.isdigit():
        error("deploy/Dockerfile", f"USER {users[-1]} is not numeric: runAsNonRoot cannot verify a name")
        return None, None
    return int(user), int(group) if group.isdigit() else None


def check_pod(where, doc, pod, configmaps, image_user, herald_defaults):
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    every = [(c, "init container") for c in inits] + [(c, "container") for c in containers] + [
        (c, "ephemeral container") for c in spec.get("ephemeralContainers") or []
    ]
    if not containers:
        error(where, "a pod template without containers")

    # The "restricted" Pod Security Standard (and the baseline under it).
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            error(where, f"{key}: true is refused by Pod Security (baseline)")
    for volume in spec.get("volumes") or []:
        kinds = [k for k in volume if k != "name"]
        if any(k not in RESTRICTED_VOLUMES for k in kinds):
            error(where, f"volume {volume.get('name')} ({', '.join(kinds)}) is not allowed by the restricted level")
    if psc.get("runAsUser") == 0:
        error(where, "the pod's runAsUser is 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        error(where, "the pod's seccompProfile is Unconfined")
    for c, what in every:
        cw = f"{where}: {what} {c.get('name')}"
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            error(cw, "securityContext.allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            error(cw, "securityContext.privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            error(cw, "securityContext.capabilities.drop must hold ALL")
        if any(cap != "NET_BIND_SERVICE" for cap in caps.get("add") or []):
            error(cw, f"securityContext.capabilities.add {caps.get('add')}: only NET_BIND_SERVICE is allowed")
        if sc.get("readOnlyRootFilesystem") is not True:
            error(cw, "securityContext.readOnlyRootFilesystem must be true")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            error(cw, "runAsNonRoot must be true (on the pod or the container)")
        if sc.get("runAsUser") == 0:
            error(cw, "runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined" or not (pod_seccomp or seccomp in ("RuntimeDefault", "Localhost")):
            error(cw, "seccompProfile must be RuntimeDefault (on the pod or the container)")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            error(cw, "hostPort is refused by Pod Security (baseline)")
        if what == "ephemeral container":
            continue
        if what == "init container":
            container_env(c, configmaps, cw)  # the ConfigMaps it names exist
        # Resources: what the scheduler needs, and a memory ceiling.
        res = c.get("resources") or {}
        for need in ("requests.cpu", "requests.memory", "limits.memory"):
            section, name = need.split(".")
            if name not in (res.get(section) or {}):
                error(cw, f"no resources.{need}")
        image = c.get("image") or ""
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image or image.endswith(":latest"):
            error(cw, f"image {image!r} has no fixed tag")

    # Herald's own: the image's numeric user, no Kubernetes API token.
    herald = [c for c in inits + containers if (c.get("image") or "").split("@")[0].rsplit(":", 1)[0].endswith("herald")]
    if herald:
        user, group = image_user
        if user is not None and psc.get("runAsUser") != user:
            error(where, f"the pod's runAsUser is {psc.get('runAsUser')}, the image's USER is {user}")
        if group is not None and psc.get("runAsGroup") != group:
            error(where, f"the pod's runAsGroup is {psc.get('runAsGroup')}, the image's group is {group}")
        if spec.get("automountServiceAccountToken") is not False:
            error(where, "automountServiceAccountToken must be false (Herald never calls the Kubernetes API)")

    for c in containers:
        cw = f"{where}: container {c.get('name')}"
        probes = {p: c.get(p) for p in ("startupProbe", "readinessProbe", "livenessProbe")}
        want = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": None}
        for p, path in want.items():
            probe = probes[p]
            if not probe:
                error(cw, f"no {p}")
            elif path and (probe.get("httpGet") or {}).get("path") != path:
                error(cw, f"{p} must be httpGet {path}, is {probe}")

        # Termination grace against the drain of the role.
        args = c.get("args") or []
        role = args[0] if args else None
        env = container_env(c, configmaps, cw)
        grace_period = spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
        drains = []
        if role in ("worker", "all"):
            drains.append(("HERALD_SHUTDOWN_GRACE", "the worker's drain"))
        if role in ("producer", "all"):
            drains.append(("HERALD_REQUEST_TIMEOUT", "the API's wait for requests in progress"))
        for var, meaning in drains:
            value = env.get(var) or herald_defaults.get(var)
            if value is None:
                continue
            try:
                drain = seconds(value)
            except ValueError as e:
                error(cw, f"{var}: {e}")
                continue
            need = pre_stop + drain + EXIT_MARGIN_S
            if grace_period < need:
                error(cw, f"terminationGracePeriodSeconds {grace_period} is too short: preStop {pre_stop} s + "
                          f"{var} {value} ({meaning}) + {EXIT_MARGIN_S} s to exit = {need:g} s")
            else:
                notes.append(f"{doc['metadata']['name']} {grace_period} s >= {pre_stop:g} + {value} + {EXIT_MARGIN_S:g}")
    return pod


def selects(selector, labels):
    if not selector:
        return False
    match = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(match or selector.get("matchExpressions"))


def is_custom(doc):
    group = doc.get("apiVersion", "").rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


# ---------------------------------------------------------------------------------------------

def check(out, rendered):
    os.makedirs(os.path.join(out, "builtin"), exist_ok=True)
    os.makedirs(os.path.join(out, "rules"), exist_ok=True)
    image_user = dockerfile_user()
    herald_defaults = defaults()
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    with open(DASHBOARD) as f:
        dashboard_text = f.read()
    try:
        json.loads(dashboard_text)
    except ValueError as e:
        error("deploy/grafana/herald-dashboard.json", f"not JSON: {e}")
    crds = []

    for path in rendered:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if not docs:
            error(name, "renders nothing")
            continue
        configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
        pods = {}  # "Kind/name" -> pod template
        for doc in docs:
            where = f"{name}: {kn(doc)}"
            for key in ("apiVersion", "kind"):
                if not doc.get(key):
                    error(where, f"no {key}")
            template = pod_template(doc)
            if template is not None:
                pods[kn(doc)] = check_pod(where, doc, template, configmaps, image_user, herald_defaults)
            if doc.get("kind") == "Namespace":
                labels = doc["metadata"].get("labels") or {}
                if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
                    error(where, "the namespace must enforce the restricted Pod Security level")
            if doc.get("kind") == "PrometheusRule":
                if doc.get("spec") != rules:
                    error(where, "its rules differ from deploy/prometheus/herald-rules.yml: "
                                 "change that file, then run scripts/check-deploy.sh --write")
                rule_file = os.path.join(out, "rules", f"{name}-{doc['metadata']['name']}.yml")
                with open(rule_file, "w") as f:
                    yaml.safe_dump(doc.get("spec"), f, sort_keys=False)
            if doc.get("kind") == "ConfigMap" and (doc["metadata"].get("labels") or {}).get("grafana_dashboard"):
                data = doc.get("data") or {}
                if data.get("herald-dashboard.json") != dashboard_text:
                    error(where, "does not hold deploy/grafana/herald-dashboard.json as it is")
                for key, value in data.items():
                    try:
                        json.loads(value)
                    except ValueError as e:
                        error(where, f"{key} is not JSON: {e}")

        # Every workload has a PodDisruptionBudget, every Service selects pods with its port.
        pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
        for key, pod in pods.items():
            if not key.startswith(("Deployment/", "StatefulSet/")):
                continue
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if not any(selects((p.get("spec") or {}).get("selector"), labels) for p in pdbs):
                error(f"{name}: {key}", "no PodDisruptionBudget selects its pods")
        for svc in (d for d in docs if d.get("kind") == "Service"):
            selector = (svc.get("spec") or {}).get("selector") or {}
            chosen = [p for p in pods.values()
                      if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())]
            if not chosen:
                error(f"{name}: {kn(svc)}", f"its selector {selector} matches no pod")
            for port in svc["spec"].get("ports") or []:
                target = port.get("targetPort")
                if isinstance(target, str) and not all(
                    any(cp.get("name") == target for c in p["spec"]["containers"] for cp in c.get("ports") or [])
                    for p in chosen
                ):
                    error(f"{name}: {kn(svc)}", f"targetPort {target} is not a named port of every pod it selects")

        # An autoscaled Deployment: one autoscaler, and no `replicas` for apply to reset.
        owners = {}
        for doc in docs:
            if doc.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject"):
                ref = (doc.get("spec") or {}).get("scaleTargetRef") or {}
                target = f"{ref.get('kind', 'Deployment')}/{ref.get('name')}"
                owners.setdefault(target, []).append(kn(doc))
        for target, by in owners.items():
            workload = next((d for d in docs if kn(d) == target), None)
            if workload is None:
                error(name, f"{', '.join(by)} scale {target}, which is not in the output")
                continue
            if len(by) > 1:
                error(name, f"{target} is scaled by {' and '.join(by)}: use one")
            if "replicas" in (workload.get("spec") or {}):
                error(f"{name}: {target}", f"sets replicas, which {by[0]} owns: kubectl apply would reset it")

        builtin = [d for d in docs if not is_custom(d)]
        with open(os.path.join(out, "builtin", f"{name}.yaml"), "w") as f:
            yaml.safe_dump_all(builtin, f, sort_keys=False)
        crds += [{"file": name, "doc": d} for d in docs if is_custom(d)]
        print(f"ok   {name}: {len(docs)} documents, {len(pods)} pod templates checked; termination grace "
              f"periods against the drains: {', '.join(notes) or 'none'}")
        notes.clear()

    with open(os.path.join(out, "crds.json"), "w") as f:
        json.dump(crds, f)


def main():
    if sys.argv[1:2] == ["write-prometheusrule"]:
        write_prometheusrule()
        return 0
    if sys.argv[1:2] == ["check"] and len(sys.argv) > 3:
        check(sys.argv[2], sys.argv[3:])
        for e in errors:
            print(e)
        return 1 if errors else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
