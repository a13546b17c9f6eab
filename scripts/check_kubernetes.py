#!/usr/bin/env python3
"""Validates `kustomize build deploy/kubernetes` (read from stdin) strictly.

Core kinds against the Kubernetes OpenAPI schemas of kubernetes-validate (unknown fields refused);
ServiceMonitor, ScrapeConfig and PrometheusRule against the prometheus-operator CRDs vendored in
tests/schemas/prometheus-operator (unknown fields refused likewise). Then what the kit promises:
every object carries the release label the Prometheus selects by, the Deployment mounts what the
render defines (hash-suffixed ConfigMaps, the state claim), PBX certificates are checked, and the
PBXes are listed once: the ScrapeConfig takes them from the exporter's /sd (through the rendered
Service and port) and names none itself.

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


def check_scrape_config(by_kind):
    """The ScrapeConfig probes the PBXes the exporter's /sd lists, through the rendered Service."""
    errors = []
    svc = by_kind["Service"][0]
    host = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"
    ports = {p["port"] for p in svc["spec"]["ports"]}
    for sc in by_kind["ScrapeConfig"]:
        name = f"ScrapeConfig/{sc['metadata']['name']}"
        spec = sc["spec"]
        sd = spec.get("httpSDConfigs", [])
        others = [k for k in spec if k.endswith("SDConfigs") and k != "httpSDConfigs"] + (
            ["staticConfigs"] if "staticConfigs" in spec else [])
        if others:
            errors.append(f"{name}: targets from {others}: the PBXes belong in config.yml alone")
        if len(sd) != 1:
            errors.append(f"{name}: {len(sd)} httpSDConfigs, want the exporter's /sd")
            continue
        want = [f"http://{host}:{p}/sd" for p in sorted(ports)]
        if sd[0]["url"] not in want:
            errors.append(f"{name}: httpSDConfigs url {sd[0]['url']!r}, want one of {want}")
        if spec.get("metricsPath") != "/probe":
            errors.append(f"{name}: metricsPath {spec.get('metricsPath')!r}, want /probe")
        rl = spec.get("relabelings", [])
        def has(src, target):
            return any(r.get("sourceLabels") == src and r.get("targetLabel") == target for r in rl)
        if not has(["__address__"], "__param_target"):
            errors.append(f"{name}: no relabelling of __address__ to __param_target (?target=)")
        if not has(["__param_target"], "instance"):
            errors.append(f"{name}: instance is not the PBX's name")
        if not has(["__meta_url"], "__address__"):
            errors.append(f"{name}: the probes do not go to the exporter that served /sd")
        sm = by_kind["ServiceMonitor"][0]["spec"]["endpoints"][0].get("relabelings", [])
        exporter = {r.get("replacement") for r in rl if r.get("targetLabel") == "exporter"}
        if exporter != {r.get("replacement") for r in sm if r.get("targetLabel") == "exporter"}:
            errors.append(f"{name}: its exporter label differs from the ServiceMonitor's")
    return errors


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

    for kind in ["Deployment", "Service", "ServiceMonitor", "ScrapeConfig", "PrometheusRule",
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
        if "Probe" in by_kind:
            errors.append("a Probe is rendered: it would list the PBXes a second time")
        errors.extend(check_scrape_config(by_kind))
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"{len(docs)} objects valid (Kubernetes {args.kubernetes_version}, prometheus-operator CRDs, strict)")


if __name__ == "__main__":
    main()
