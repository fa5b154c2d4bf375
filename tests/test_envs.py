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
    # The Python environment of the rules; envs/paper.yaml is the TeX toolchain (no Python).
    env_files = [e for e in sorted((ROOT / "envs").glob("*.yaml")) if e.name != "paper.yaml"]
    assert env_files
    for env in env_files:
        spec = yaml.safe_load(env.read_text())
        deps = spec["dependencies"]
        assert "python=3.11" in deps
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        got = pins(pip)
        for name, version in got.items():
            assert expected.get(name) == version, f"{env.name}: {name}=={version} but pyproject pins {expected.get(name)}"
        # Snakemake, its SLURM plugin and pygments (its HTML report) run on the submit host, not in jobs.
        missing = {name for name in set(expected) - set(got) if not name.startswith("snakemake") and name != "pygments"}
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


def test_the_tex_env_pins_its_toolchain():
    spec = yaml.safe_load((ROOT / "envs" / "paper.yaml").read_text())
    deps = {d.split("=")[0]: d.split("=")[1] for d in spec["dependencies"]}
    assert set(deps) == {"texlive-core", "latexmk"} and all(deps.values())
    assert 'conda:\n        "../envs/paper.yaml"' in (ROOT / "rules" / "paper.smk").read_text()
