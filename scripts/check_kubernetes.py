#!/usr/bin/env python3
"""Validates `kustomize build deploy/kubernetes` (read from stdin) strictly.

Core kinds against the Kubernetes OpenAPI schemas of kubernetes-validate (unknown fields refused);
ServiceMonitor, Probe and PrometheusRule against the prometheus-operator CRDs vendored in
tests/schemas/prometheus-operator (unknown fields refused likewise). Then what the kit promises:
every object carries the release label the Prometheus selects by, the Deployment mounts what the
render defines (hash-suffixed ConfigMaps, the state claim), PBX certificates are checked.

    kustomize build deploy/kubernetes | python3 scripts/check_kubernetes.py [--kubernetes-version 1.30]
"""
import argparse
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRDS = ROOT / "tests" / "schemas" / "prometheus-operator"


def strict(schema):
    """Refuses unknown fields wherever the schema lists its fields (as `kubectl --validate=strict`)."""
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def crd_schemas():
    out = {}
    for f in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            out[(f"{group}/{v['name']}", kind)] = strict(v["schema"]["openAPIV3Schema"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubernetes-version", default="1.30")
    ap.add_argument("--release-label", default="release")
    args = ap.parse_args()
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    crds = crd_schemas()
    errors = []
    by_kind = {}
    for d in docs:
        key = (d["apiVersion"], d["kind"])
        name = f"{d['kind']}/{d['metadata']['name']}"
        by_kind.setdefault(d["kind"], []).append(d)
        try:
            if key in crds:
                jsonschema.Draft7Validator(crds[key]).validate(d)
            else:
                kubernetes_validate.validate(d, args.kubernetes_version, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as e:
            errors.append(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
        labels = d["metadata"].get("labels", {})
        if args.release_label not in labels:
            errors.append(f"{name}: no {args.release_label!r} label (kube-prometheus-stack would ignore it)")
        if d["metadata"].get("namespace") != "monitoring":
            errors.append(f"{name}: namespace {d['metadata'].get('namespace')!r}")

    for kind in ["Deployment", "Service", "ServiceMonitor", "Probe", "PrometheusRule",
                 "PersistentVolumeClaim", "ConfigMap"]:
        if kind not in by_kind:
            errors.append(f"no {kind} rendered")
    if not errors:
        dep = by_kind["Deployment"][0]
        pod = dep["spec"]["template"]["spec"]
        maps = {c["metadata"]["name"] for c in by_kind["ConfigMap"]}
        claims = {c["metadata"]["name"] for c in by_kind["PersistentVolumeClaim"]}
        for v in pod["volumes"]:
            if "configMap" in v and v["configMap"]["name"] not in maps:
                errors.append(f"volume {v['name']}: ConfigMap {v['configMap']['name']} is not rendered")
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in claims:
                errors.append(f"volume {v['name']}: claim is not rendered")
        for m in maps:
            if m in ("yeastar-exporter", "yeastar-exporter-pbx-ca"):
                errors.append(f"ConfigMap {m} has no content hash: a change would not roll the exporter")
        config = next((c["data"]["config.yml"] for c in by_kind["ConfigMap"] if "config.yml" in c.get("data", {})), "")
        if "insecure_skip_verify: true" in config:
            errors.append("the example config turns PBX certificate checking off")
        if dep["spec"].get("strategy", {}).get("type") != "Recreate":
            errors.append("Deployment: two exporters would overlap during a rollout")
        args_ = pod["containers"][0]["args"]
        if "--pbx.state-dir=/var/lib/yeastar-exporter" not in args_:
            errors.append("Deployment: no --pbx.state-dir")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"{len(docs)} objects valid (Kubernetes {args.kubernetes_version}, prometheus-operator CRDs, strict)")


if __name__ == "__main__":
    main()
