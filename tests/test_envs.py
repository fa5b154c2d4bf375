"""Conda env files for cluster users parse and pin exactly what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT


def pins(requirements):
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        assert m, f"not an exact pin: {req}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_env_files_agree_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = pins(project["dependencies"])
    expected.update(pins(project["optional-dependencies"]["cpu"]))
    env_files = sorted((ROOT / "envs").glob("*.yaml"))
    assert env_files
    for env in env_files:
        spec = yaml.safe_load(env.read_text())
        deps = spec["dependencies"]
        assert "python=3.11" in deps
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        got = pins(pip)
        for name, version in got.items():
            assert expected.get(name) == version, f"{env.name}: {name}=={version} but pyproject pins {expected.get(name)}"
        missing = set(expected) - set(got) - {"snakemake"}  # snakemake runs the workflow, not the jobs
        assert not missing, f"{env.name} lacks {sorted(missing)}"


def test_every_rule_uses_an_existing_env():
    for smk in (ROOT / "rules").glob("*.smk"):
        for match in re.findall(r'CONDA_ENV = "\.\./(envs/[^"]+)"', smk.read_text()):
            assert (ROOT / match).exists()
    assert (ROOT / "envs" / "xstilts.yaml").exists()


def test_lock_file_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = pins(project["dependencies"] + project["optional-dependencies"]["cpu"] + project["optional-dependencies"]["test"])
    lines = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line and not line.startswith("#")]
    locked = pins(lines)
    for name, version in expected.items():
        assert locked.get(name) == version, f"requirements.lock has {name}=={locked.get(name)}, pyproject pins {version}"
    assert not any(name.startswith("nvidia-") for name in locked)  # no CUDA wheels on the CPU lock
