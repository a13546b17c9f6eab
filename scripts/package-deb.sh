#!/usr/bin/env bash
# Builds the Debian package target/debian/yeastar-exporter_VERSION-1_ARCH.deb with cargo-deb:
# the release binary, the man page (the --help text, made by help2man), the systemd unit and
# config files of deploy/debian, the examples. Installs cargo-deb and help2man when missing.
# Extra arguments go to cargo deb (e.g. --target aarch64-unknown-linux-gnu after a cross-build).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
if ! command -v help2man >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq help2man >/dev/null
fi
cargo build --release --locked
mkdir -p target/man
help2man --no-info --no-discard-stderr \
  --name "Prometheus exporter for Yeastar S-Series VoIP PBXes" \
  --version-string "$(target/release/yeastar-exporter --version | head -1 | cut -d' ' -f2)" \
  target/release/yeastar-exporter | gzip -9n > target/man/yeastar-exporter.1.gz
cargo deb --no-build --locked "$@"
