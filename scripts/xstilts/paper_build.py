"""Compiling the paper: latexmk, with the TeX log kept and a clear error when TeX is missing."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

TOOLCHAIN = ("latexmk", "pdflatex")
INSTALL_HINT = (
    "install a TeX toolchain, e.g. on Debian/Ubuntu: apt-get install --no-install-recommends latexmk "
    "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended (or envs/paper.yaml with conda)"
)


def toolchain_available() -> bool:
    return all(shutil.which(tool) for tool in TOOLCHAIN)


# A fixed date for the PDF's metadata (pdfTeX honours SOURCE_DATE_EPOCH with FORCE_SOURCE_DATE):
# the same inputs give the same bytes. 2020-05-26, the paper's arXiv date.
SOURCE_DATE_EPOCH = "1590451200"


def compile_pdf(main_tex: str | Path, generated: dict[str, str | Path], build_dir: str | Path, out_pdf: str | Path) -> None:
    """Run latexmk -pdf on ``main_tex`` in ``build_dir`` and copy the PDF to ``out_pdf``.

    ``generated`` maps each name the paper \\inputs or \\includegraphics (``tables/matrix.tex``)
    to the file of the run that provides it. They are copied under those names into
    ``build_dir/inputs``, which TeX searches after the paper's own folder (TEXINPUTS), so the
    handwritten sources stay in paper/ and the run's outputs stay where its rules wrote them.
    """
    if not toolchain_available():
        raise RuntimeError(f"cannot compile the paper: {' or '.join(TOOLCHAIN)} not found; {INSTALL_HINT}")
    main_tex = Path(main_tex).resolve()
    build_dir = Path(build_dir).resolve()
    # A clean build every time: latexmk's state from an earlier (failed) build would otherwise
    # decide what to rerun, and the staged inputs must be exactly this run's.
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    inputs = build_dir / "inputs"
    for name, path in sorted(generated.items()):
        staged = inputs / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staged)
    search = [str(main_tex.parent), str(inputs)]
    env = {**os.environ, "TEXINPUTS": os.pathsep.join(search) + os.pathsep,
           "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "FORCE_SOURCE_DATE": "1",
           # Unwrapped log lines, so an error message reaches the exception whole.
           "max_print_line": "10000", "error_line": "254", "half_error_line": "238"}
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
           f"-outdir={build_dir}", str(main_tex)]
    proc = subprocess.run(cmd, cwd=build_dir, env=env, capture_output=True, text=True)
    log.info("TEXINPUTS=%s %s\n%s", env["TEXINPUTS"], " ".join(cmd), proc.stdout[-20000:])
    if proc.returncode != 0:
        errors = [line for line in proc.stdout.splitlines()
                  if line.startswith("!") or re.search(r"\.tex:\d+: ", line) or "LaTeX Error" in line]
        raise RuntimeError(f"latexmk failed (exit {proc.returncode}); TeX log: {build_dir / (main_tex.stem + '.log')}; "
                           + "; ".join(errors[:5]))
    shutil.copyfile(build_dir / f"{main_tex.stem}.pdf", out_pdf)
