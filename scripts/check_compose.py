#!/usr/bin/env python3
"""Checks deploy/docker/compose.yml as `docker compose config` would, without Docker: the file
against the Compose Specification's schema (tests/schemas/compose-spec), then what the schema
cannot see — every build context and Dockerfile, every bind-mounted file exists, every named
volume is declared, every depends_on names a service.

    python3 scripts/check_compose.py [deploy/docker/compose.yml]
"""
import json
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "deploy/docker/compose.yml")
    schema = json.loads((ROOT / "tests/schemas/compose-spec/compose-spec.json").read_text())
    doc = yaml.safe_load(path.read_text())
    errors = [f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    base = path.parent
    services = doc.get("services", {})
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            ctx = base / (build if isinstance(build, str) else build.get("context", "."))
            if not ctx.is_dir():
                errors.append(f"services.{name}.build: no context {ctx}")
            dockerfile = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not dockerfile.is_file():
                errors.append(f"services.{name}.build: no Dockerfile {dockerfile}")
        elif "image" not in svc:
            errors.append(f"services.{name}: neither build nor image")
        for v in svc.get("volumes", []):
            src = (v.split(":")[0] if isinstance(v, str) else v.get("source", ""))
            if src.startswith((".", "/")):
                if not (base / src).exists():
                    errors.append(f"services.{name}.volumes: {src} does not exist")
            elif src not in (doc.get("volumes") or {}):
                errors.append(f"services.{name}.volumes: named volume {src} is not declared")
        for dep in svc.get("depends_on", []):
            if dep not in services:
                errors.append(f"services.{name}.depends_on: no service {dep}")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"{path.relative_to(ROOT)}: valid (Compose Specification, {len(services)} services)")


if __name__ == "__main__":
    main()
