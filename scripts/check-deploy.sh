#!/usr/bin/env bash
# Checks deploy/ as CI does (make check-deploy), without a cluster:
#   1. renders the kustomize base, every overlay, and each component on the base, with
#      `kubectl kustomize`;
#   2. validates every document of Kubernetes' own kinds with kubernetes-validate --strict
#      (an unknown field, a wrong type, a missing required field, an unknown kind fail) against
#      the oldest and the newest Kubernetes named below, and the custom resources (KEDA, the
#      Prometheus operator) against their schemas (scripts/check-deploy-crds.mjs);
#   3. runs `promtool check rules` on deploy/prometheus/herald-rules.yml and on the
#      PrometheusRule's rules taken from the rendered output;
#   4. checks the Grafana dashboard is JSON, and that its ConfigMap holds the file as it is;
#   5. checks every pod template (scripts/check-deploy.py): the "restricted" Pod Security
#      settings, a read-only root filesystem, the image's user, resources, probes, a
#      termination grace period longer than the drain (HERALD_SHUTDOWN_GRACE for workers), a
#      PodDisruptionBudget for every role, one autoscaler per Deployment, and the
#      PrometheusRule equal to deploy/prometheus/herald-rules.yml.
#
#   scripts/check-deploy.sh           check
#   scripts/check-deploy.sh --write   first make the PrometheusRule again from the rule file
#
# Installs what it needs when missing: kubectl (apt-get, as root), kubernetes-validate (pip,
# into a virtualenv under target/check-deploy), the schema packages and TypeScript (npm, under
# target/check-deploy), promtool (scripts/prometheus-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSIONS="1.30.0 1.37.0"
KUBERNETES_VALIDATE=1.37.0
NPM_PACKAGES="@kubernetes-models/keda@2.0.0 @kubernetes-models/prometheus-operator@6.0.0 typescript@5.9.3"
OUT=target/check-deploy
start=$(date +%s)

fail() {
    echo "check-deploy: $*" >&2
    exit 1
}

# --- tools -----------------------------------------------------------------------------------
if ! command -v kubectl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing kubectl (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl; } >/dev/null ||
            fail "kubectl is missing and apt-get could not install it: install kubectl (1.27 or later, with kustomize v5) from Kubernetes' apt repository"
    else
        fail "kubectl is missing: install kubectl (1.27 or later, with kustomize v5), or run this as root to have it installed with apt-get"
    fi
fi
command -v kubectl >/dev/null 2>&1 ||
    fail "kubectl is still missing after apt-get: install kubectl (1.27 or later, with kustomize v5) from Kubernetes' apt repository"
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p' || true)
[ "${kustomize_version:-0}" -ge 5 ] || fail "kubectl's kustomize is older than v5 ($(kubectl version --client 2>&1 | tr '\n' ' ')): install a newer kubectl"

mkdir -p "$OUT"
venv=$OUT/venv
if [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$KUBERNETES_VALIDATE" ]; then
    echo "installing kubernetes-validate $KUBERNETES_VALIDATE (pip, into $venv)"
    rm -rf "$venv"
    python3 -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE" ||
        fail "pip could not install kubernetes-validate==$KUBERNETES_VALIDATE"
fi

node_dir=$OUT/node
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    fail "node and npm are needed to validate the custom resources (Debian: apt-get install nodejs npm)"
if [ "$(cat "$node_dir/installed" 2>/dev/null)" != "$NPM_PACKAGES" ]; then
    echo "installing $NPM_PACKAGES (npm, into $node_dir)"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    echo '{"private": true, "type": "module"}' >"$node_dir/package.json"
    # shellcheck disable=SC2086
    (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error $NPM_PACKAGES >/dev/null) ||
        fail "npm could not install $NPM_PACKAGES"
    echo "$NPM_PACKAGES" >"$node_dir/installed"
fi

./scripts/prometheus-deps.sh >&2
PROMTOOL=${HERALD_PROMTOOL:-promtool}

# --- 1. render -------------------------------------------------------------------------------
if [ "${1:-}" = "--write" ]; then
    "$venv/bin/python" scripts/check-deploy.py write-prometheusrule
elif [ -n "${1:-}" ]; then
    fail "unknown argument $1 (--write makes the PrometheusRule again)"
fi

rm -rf "$OUT/rendered" "$OUT/checked" "$OUT/components"
mkdir -p "$OUT/rendered" "$OUT/checked"
# Each component alone on the base too (an overlay may not use them all), in a kustomization
# made for the purpose.
for dir in deploy/kubernetes/components/*/; do
    name=$(basename "$dir")
    mkdir -p "$OUT/components/component-$name"
    printf 'resources: [../../../../deploy/kubernetes/base]\ncomponents: [../../../../deploy/kubernetes/components/%s]\n' \
        "$name" >"$OUT/components/component-$name/kustomization.yaml"
done
rendered=()
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/ "$OUT"/components/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    kubectl kustomize "$dir" >"$OUT/rendered/$name.yaml" || fail "kubectl kustomize $dir failed"
    rendered+=("$OUT/rendered/$name.yaml")
    echo "ok   rendered $dir ($(grep -c '^kind:' "$OUT/rendered/$name.yaml") documents)"
done

# --- 4, 5. the pods, the rules' and the dashboard's copies -------------------------------------
failed=0
"$venv/bin/python" scripts/check-deploy.py check "$OUT/checked" "${rendered[@]}" || failed=1

# --- 2. schemas ------------------------------------------------------------------------------
for file in "$OUT"/checked/builtin/*.yaml; do
    valid=1
    for version in $KUBERNETES_VERSIONS; do
        # --quiet prints failures and warnings only; a warning is a kind without a schema.
        if ! report=$("$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$file" 2>&1) || [ -n "$report" ]; then
            echo "$report"
            echo "ERROR $(basename "$file" .yaml) does not validate against Kubernetes $version"
            valid=0
            failed=1
        fi
    done
    [ "$valid" = 0 ] ||
        echo "ok   $(basename "$file" .yaml): Kubernetes' own kinds valid for Kubernetes ${KUBERNETES_VERSIONS// / and } (strict)"
done
cp scripts/check-deploy-crds.mjs "$node_dir/"
crds=$(realpath "$OUT/checked/crds.json")
(cd "$node_dir" && node check-deploy-crds.mjs "$crds") || failed=1

# --- 3. rules --------------------------------------------------------------------------------
for rules in deploy/prometheus/herald-rules.yml "$OUT"/checked/rules/*.yml; do
    [ -e "$rules" ] || continue
    if report=$("$PROMTOOL" check rules "$rules" 2>&1); then
        echo "ok   promtool check rules $rules: $(echo "$report" | grep -o 'SUCCESS.*' | head -1)"
    else
        echo "$report"
        echo "ERROR promtool check rules $rules"
        failed=1
    fi
done

if [ "$failed" != 0 ]; then
    echo "check-deploy: FAILED (rendered manifests in $OUT/rendered)" >&2
    exit 1
fi
echo "check-deploy: deploy/ is valid ($(( $(date +%s) - start ))s)"
