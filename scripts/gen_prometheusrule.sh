#!/usr/bin/env bash
# Regenerates deploy/kubernetes/prometheusrule.yml from deploy/prometheus/alerts.yml and
# recording.yml (their groups, verbatim); tests/operator_kit.rs checks they match.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Generated from deploy/prometheus/alerts.yml and recording.yml by scripts/gen_prometheusrule.sh; tests/operator_kit.rs checks they match."
  echo "apiVersion: monitoring.coreos.com/v1"
  echo "kind: PrometheusRule"
  echo "metadata:"
  echo "  name: yeastar-exporter"
  echo "spec:"
  sed -n '/^groups:/,$p' deploy/prometheus/alerts.yml | sed 's/^\(.\)/  \1/'
  sed -n '/^groups:/,$p' deploy/prometheus/recording.yml | tail -n +2 | sed 's/^\(.\)/  \1/'
} > deploy/kubernetes/prometheusrule.yml
