"""The test suite's fork server for Snakemake runs (tests/snakemake_server.py): a forked run
answers as ``python -m snakemake`` in a process of its own does, a timeout kills it, and a run
the server cannot serve as a fresh process would runs in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import snakemake_server

# A Snakefile that reports what the run's process sees: its folder, import path, command line,
# environment variable, parent, and whether its standard streams reach the caller.
PROBE = """
import json, os, sys
onstart:
    pass
rule probe:
    output: "probe.json"
    run:
        with open(output[0], "w") as f:
            json.dump({"cwd": os.getcwd(), "path0": sys.path[0], "argv0": os.path.basename(sys.argv[0]),
                       "value": os.environ.get("XSTILTS_PROBE_VALUE"), "pid": os.getpid()}, f)
print("probe: on stdout", flush=True)
print("probe: on stderr", file=sys.stderr, flush=True)
if os.environ.get("XSTILTS_PROBE_EXIT"):
    sys.exit(int(os.environ["XSTILTS_PROBE_EXIT"]))
if os.environ.get("XSTILTS_PROBE_SLEEP"):
    import time
    time.sleep(float(os.environ["XSTILTS_PROBE_SLEEP"]))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    (folder / "Snakefile").write_text(PROBE)
    handle = snakemake_server.Server(folder / "server", folder)
    yield handle, folder
    handle.stop()


def served(handle: snakemake_server.Server) -> list[str]:
    return [line for line in handle.log.read_text().splitlines() if "run pid" in line or "refused" in line]


def probe(handle, folder: Path, workdir: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
          timeout: float | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    args = ["-s", str(folder / "Snakefile"), "--cores", "1", "--directory", str(workdir), "probe.json"]
    proc = snakemake_server.run(args, cwd=cwd or folder, env={**os.environ, **(env or {})}, timeout=timeout,
                                server=handle)
    out = workdir / "probe.json"
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_a_forked_run_sees_what_a_fresh_process_sees(server, tmp_path):
    handle, folder = server
    env = {"XSTILTS_PROBE_VALUE": "forked"}
    before = len(served(handle))
    forked, seen = probe(handle, folder, tmp_path / "forked", env)
    assert served(handle)[before:] == [served(handle)[before]] and "run pid" in served(handle)[before]
    plain = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(folder / "Snakefile"), "--cores", "1",
                            "--directory", str(tmp_path / "plain"), "probe.json"], cwd=folder,
                           env={**os.environ, **env}, capture_output=True, text=True)
    expected = json.loads((tmp_path / "plain" / "probe.json").read_text())
    assert forked.returncode == plain.returncode == 0, forked.stderr
    assert seen["pid"] != expected["pid"]
    for key in ("path0", "argv0", "value"):
        assert seen[key] == expected[key], key
    assert seen["argv0"] == "__main__.py" and seen["value"] == "forked"
    assert (seen["cwd"], expected["cwd"]) == (str(tmp_path / "forked"), str(tmp_path / "plain"))  # --directory
    assert "probe: on stdout" in forked.stdout and "probe: on stderr" in forked.stderr
    # Snakemake's header names the folder it was started in: the same as a fresh process's.
    assert f"Run directory: {folder}" in forked.stdout + forked.stderr
    assert f"Run directory: {folder}" in plain.stdout + plain.stderr


def test_the_exit_status_is_the_runs(server, tmp_path):
    handle, folder = server
    proc, seen = probe(handle, folder, tmp_path / "w", {"XSTILTS_PROBE_EXIT": "3"})
    assert proc.returncode == 3 and seen is None
    assert "run pid" in served(handle)[-1]


def test_a_timeout_kills_the_run(server, tmp_path):
    handle, folder = server
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        probe(handle, folder, tmp_path / "w", {"XSTILTS_PROBE_SLEEP": "60"}, timeout=3)
    assert time.monotonic() - started < 20
    assert "probe: on stdout" in caught.value.output
    pid = int(served(handle)[-1].split("run pid ")[1].split(":")[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("change", ["environment", "folder"])
def test_a_run_the_server_cannot_serve_runs_in_a_process_of_its_own(server, tmp_path, change):
    handle, folder = server
    env = {"XSTILTS_PROBE_VALUE": "own", **({"OMP_NUM_THREADS": "7"} if change == "environment" else {})}
    cwd = tmp_path if change == "folder" else folder
    proc, seen = probe(handle, folder, tmp_path / "w", env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    reason = served(handle)[-1]
    assert "refused" in reason
    assert ("OMP_NUM_THREADS" in reason) if change == "environment" else (str(tmp_path) in reason)
    assert seen["value"] == "own" and seen["cwd"] == str(tmp_path / "w")
    assert f"Run directory: {cwd}" in proc.stdout + proc.stderr
