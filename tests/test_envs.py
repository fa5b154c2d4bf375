"""Conda env files for cluster users parse and pin exactly what pyproject.toml pins."""

from __future__ import annotations

import re
import textwrap
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


RULE_HEADER = re.compile(r"^( *)(?:rule|checkpoint) (\w+):", re.M)
ACTIONS = ("script", "shell", "run", "notebook", "wrapper")


def rule_directives(text: str) -> dict[str, dict[str, str]]:
    """rule name -> {directive: its value} for every rule of a Snakemake file (the value is the
    rest of the directive's line, or its next line)."""
    rules = {}
    lines = text.splitlines()
    for header in RULE_HEADER.finditer(text):
        indent, name = len(header.group(1)), header.group(2)
        start = text.count("\n", 0, header.start()) + 1
        directives: dict[str, str] = {}
        for n in range(start, len(lines)):
            line = lines[n]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break  # the rule block ends at the first line indented no deeper than its header
            m = re.fullmatch(r" +(\w+):(.*)", line)
            if m and len(line) - len(line.lstrip()) == indent + 4:
                value = m.group(2).strip() or next((x.strip() for x in lines[n + 1:] if x.strip()), "")
                directives[m.group(1)] = value
        rules[name] = directives
    return rules


def conda_problems(texts: dict[str, str], rules_dir=ROOT / "rules") -> tuple[list[str], int]:
    """Rules that run something but name no existing conda env file; also the number of such
    rules checked. ``texts``: file name -> Snakemake source."""
    constants = dict(re.findall(r'^(\w+) = "([^"]+)"$', "\n".join(texts.values()), re.M))
    problems, checked = [], 0
    for file, text in texts.items():
        for name, directives in rule_directives(text).items():
            if not any(a in directives for a in ACTIONS):
                continue  # a target-only rule (e.g. `paper`) runs nothing, in no env
            checked += 1
            value = directives.get("conda")
            if value is None:
                problems.append(f"{file}: rule {name} has no conda: directive")
                continue
            path = constants.get(value, value.strip('"'))
            if not (rules_dir / path).resolve().is_file():
                problems.append(f"{file}: rule {name} uses conda env {path}, which does not exist")
    return problems, checked


def test_every_rule_uses_an_existing_env():
    texts = {smk.name: smk.read_text() for smk in sorted((ROOT / "rules").glob("*.smk"))}
    texts["Snakefile"] = (ROOT / "Snakefile").read_text()
    problems, checked = conda_problems(texts)
    assert problems == []
    # Every rule with an action was found: one `script:` line each (the rules run no shell or run).
    actions = sum(len(re.findall(r"^ +script:$", t, re.M)) for t in texts.values())
    assert checked == actions and checked >= 20
    # compile_paper runs in the TeX env, every other rule in the Python one.
    paper = rule_directives(texts["paper.smk"])
    assert paper["compile_paper"]["conda"] == '"../envs/paper.yaml"'
    assert paper["make_paper_inputs"]["conda"] == "CONDA_ENV"


def test_the_conda_check_catches_a_rule_without_env():
    rules = textwrap.dedent("""\
        CONDA_ENV = "../envs/xstilts.yaml"

        rule good:
            output:
                "a",
            conda:
                CONDA_ENV
            script:
                "../scripts/a.py"

        if True:

            rule missing:
                output:
                    "b",
                script:
                    "../scripts/b.py"

        rule wrong:
            output: "c"
            conda: "../envs/nowhere.yaml"
            shell: "touch {output}"

        rule target_only:
            input:
                "a",
        """)
    problems, checked = conda_problems({"x.smk": rules})
    assert checked == 3
    assert problems == ["x.smk: rule missing has no conda: directive",
                        "x.smk: rule wrong uses conda env ../envs/nowhere.yaml, which does not exist"]


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
