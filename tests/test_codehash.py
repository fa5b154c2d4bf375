"""Code fingerprints: which edits change which script's digest, on synthetic packages and the repo."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xstilts import codehash

REPO_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not exactly once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def script(*imports_and_calls: str) -> str:
    return "import sys\nsys.path.insert(0, 'x')\n" + "\n".join(imports_and_calls) + "\n"


@pytest.fixture()
def pkg(tmp_path) -> Path:
    """pkg: a pipeline module with lazy imports, the shape of xstilts.pipeline; two scripts a, b."""
    write(tmp_path, {
        "pkg/__init__.py": '"""The package."""\n__version__ = "1"\n',
        "pkg/pipeline.py": '''\
            """Job functions."""
            import json
            from pkg import util

            LEVEL = 3


            def train_job(path):
                """Train."""
                from pkg import training
                return training.train(path, LEVEL)


            def table_job(path):
                from pkg.tables import make_table as mk
                return mk(util.clean(path))
            ''',
        "pkg/util.py": '''\
            def clean(x):
                return x.strip()


            def unused(x):
                return x
            ''',
        "pkg/training.py": '''\
            import math


            def train(path, level):
                # the loss
                return _loss(level) + math.pi


            def _loss(level):
                return level * 2


            def evaluate():
                return 1
            ''',
        "pkg/tables.py": '''\
            def make_table(x):
                return [x]
            ''',
        "scripts/a.py": script("from pkg import pipeline", "pipeline.train_job('p')"),
        "scripts/b.py": script("from pkg import pipeline", "pipeline.table_job('p')"),
    })
    return tmp_path


def digests(root: Path) -> dict[str, str]:
    return codehash.fingerprints(root / "scripts", root / "pkg")


def units(root: Path, name: str) -> list[str]:
    return codehash.reached_units(root / "scripts" / f"{name}.py", root / "pkg")


def test_reached_units_follow_names_not_module_imports(pkg):
    assert units(pkg, "a") == [
        "pkg.pipeline:<header>", "pkg.pipeline:LEVEL", "pkg.pipeline:train_job",
        "pkg.training:<header>", "pkg.training:_loss", "pkg.training:train",
        # pipeline imports util at module level: its (empty) header runs, clean() does not.
        "pkg.util:<header>", "pkg:<header>"]
    assert units(pkg, "b") == [
        "pkg.pipeline:<header>", "pkg.pipeline:table_job", "pkg.tables:<header>", "pkg.tables:make_table",
        "pkg.util:<header>", "pkg.util:clean", "pkg:<header>"]


def test_function_edit_changes_only_the_scripts_that_reach_it(pkg):
    before = digests(pkg)
    edit(pkg / "pkg/training.py", "level * 2", "level * 3")
    after = digests(pkg)
    assert after["a"] != before["a"]
    assert after["b"] == before["b"]
    edit(pkg / "pkg/tables.py", "[x]", "[x, x]")
    final = digests(pkg)
    assert final["a"] == after["a"]
    assert final["b"] != after["b"]


def test_unreached_units_do_not_count(pkg):
    before = digests(pkg)
    edit(pkg / "pkg/training.py", "return 1", "return 2")  # evaluate(): nobody calls it
    edit(pkg / "pkg/util.py", "return x\n", "return [x]\n")  # unused()
    edit(pkg / "pkg/__init__.py", '"1"', '"2"')  # __version__, never read
    assert digests(pkg) == before


def test_docstrings_comments_and_layout_do_not_count(pkg):
    before = digests(pkg)
    edit(pkg / "pkg/pipeline.py", '"""Job functions."""', '"""Job functions, reworded.\n\nMore."""\n# note')
    edit(pkg / "pkg/pipeline.py", '"""Train."""', "'''Train a model.'''  # why")
    edit(pkg / "pkg/training.py", "# the loss", "# the loss, twice as large as before\n\n")
    edit(pkg / "pkg/training.py", "return _loss(level) + math.pi",
         "return (\n        _loss(level)\n        + math.pi\n    )")
    edit(pkg / "pkg/training.py", "def _loss(level):\n", 'def _loss(level):\n    """New docstring."""\n')
    assert digests(pkg) == before


def test_a_string_that_is_not_the_docstring_counts(pkg):
    before = digests(pkg)
    edit(pkg / "pkg/training.py", "    return level * 2", '    x = 1\n    "not a docstring"\n    return level * 2')
    assert digests(pkg)["a"] != before["a"]


def test_header_edits_count_for_reached_modules_only(pkg):
    before = digests(pkg)
    edit(pkg / "pkg/training.py", "import math\n", "import math\nimport os\n")
    after = digests(pkg)
    assert after["a"] != before["a"] and after["b"] == before["b"]
    edit(pkg / "pkg/pipeline.py", "import json\n", "import json\nimport os\n")
    final = digests(pkg)
    assert final["a"] != after["a"] and final["b"] != after["b"]


def test_from_import_as_and_relative_imports(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from .inner import helper\n",
        "pkg/sub/inner.py": "from ..base import Base\nfrom . import deep\n\ndef helper():\n    return deep.f(Base)\n\n"
                            "def other():\n    return 0\n",
        "pkg/sub/deep.py": "def f(x):\n    return x\n\ndef g():\n    return 1\n",
        "pkg/base.py": "class Base:\n    pass\n\nclass Unused:\n    pass\n",
        "scripts/s.py": script("from pkg.sub import helper as h", "h()"),
    })
    assert units(tmp_path, "s") == [
        "pkg.base:<header>", "pkg.base:Base", "pkg.sub.deep:<header>", "pkg.sub.deep:f",
        "pkg.sub.inner:<header>", "pkg.sub.inner:helper", "pkg.sub:<header>", "pkg:<header>"]


def test_import_dotted_module_and_attribute_chain(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "",
        "pkg/a/b.py": "def f():\n    return 1\n\ndef g():\n    return 2\n",
        "scripts/s.py": script("import pkg.a.b", "pkg.a.b.g()"),
        "scripts/t.py": script("import pkg.a.b as m", "m.f()"),
    })
    assert units(tmp_path, "s") == ["pkg.a.b:<header>", "pkg.a.b:g", "pkg.a:<header>", "pkg:<header>"]
    assert units(tmp_path, "t") == ["pkg.a.b:<header>", "pkg.a.b:f", "pkg.a:<header>", "pkg:<header>"]


def test_registry_dict_makes_classes_and_all_their_methods_reachable(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/formats.py": '''\
            class Tsv:
                def read(self):
                    return "tsv"

                def write(self):
                    return 1


            class Json:
                def read(self):
                    return "json"


            class Other:
                def read(self):
                    return "other"


            FORMATS = {"tsv": Tsv, "json": Json}
            ''',
        "scripts/s.py": script("from pkg.formats import FORMATS", "FORMATS['tsv']().read()"),
    })
    assert units(tmp_path, "s") == ["pkg.formats:<header>", "pkg.formats:FORMATS", "pkg.formats:Json",
                                    "pkg.formats:Tsv", "pkg:<header>"]
    before = digests(tmp_path)["s"]
    edit(tmp_path / "pkg/formats.py", 'return "other"', 'return "OTHER"')
    assert digests(tmp_path)["s"] == before
    edit(tmp_path / "pkg/formats.py", "return 1", "return 2")  # a method the script never calls
    assert digests(tmp_path)["s"] != before


def test_transitive_chain_across_three_modules(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/one.py": "from pkg import two\n\ndef f():\n    return two.g()\n",
        "pkg/two.py": "def g():\n    from pkg.three import h\n    return h()\n",
        "pkg/three.py": "def h():\n    return 3\n\ndef k():\n    return 4\n",
        "scripts/s.py": script("from pkg import one", "one.f()"),
    })
    assert units(tmp_path, "s") == ["pkg.one:<header>", "pkg.one:f", "pkg.three:<header>", "pkg.three:h",
                                    "pkg.two:<header>", "pkg.two:g", "pkg:<header>"]
    before = digests(tmp_path)["s"]
    edit(tmp_path / "pkg/three.py", "return 3", "return 33")
    assert digests(tmp_path)["s"] != before


def test_import_cycles_terminate(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "from pkg.a import f\n",
        "pkg/a.py": "from pkg.b import g\n\ndef f():\n    return g()\n",
        "pkg/b.py": "from pkg import a\n\ndef g():\n    return a.f\n",
        "scripts/s.py": script("from pkg import f", "f()"),
    })
    assert units(tmp_path, "s") == ["pkg.a:<header>", "pkg.a:f", "pkg.b:<header>", "pkg.b:g", "pkg:<header>"]


def test_getattr_with_a_computed_name_reaches_the_whole_module(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/gens.py": "def gen_a():\n    return 1\n\ndef gen_b():\n    return 2\n",
        "pkg/dispatch.py": '''\
            from pkg import gens


            def by_name(name):
                return getattr(gens, f"gen_{name}")()


            def literal():
                return getattr(gens, "gen_a")()
            ''',
        "scripts/dyn.py": script("from pkg import dispatch", "dispatch.by_name('b')"),
        "scripts/lit.py": script("from pkg import dispatch", "dispatch.literal()"),
    })
    assert units(tmp_path, "dyn") == ["pkg.dispatch:<header>", "pkg.dispatch:by_name", "pkg.gens:<header>",
                                      "pkg.gens:gen_a", "pkg.gens:gen_b", "pkg:<header>"]
    assert units(tmp_path, "lit") == ["pkg.dispatch:<header>", "pkg.dispatch:literal", "pkg.gens:<header>",
                                      "pkg.gens:gen_a", "pkg:<header>"]


def test_globals_star_import_and_import_module_fall_back(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/reg.py": "def a():\n    return 1\n\ndef b():\n    return 2\n\ndef pick(n):\n    return globals()[n]()\n",
        "pkg/star.py": "from pkg.reg import *\n\ndef run():\n    return 0\n",
        "pkg/loader.py": "import importlib\n\ndef load(n):\n    return importlib.import_module(n)\n\n"
                         "def fixed():\n    return importlib.import_module('pkg.reg').a()\n",
        "scripts/glob.py": script("from pkg.reg import pick", "pick('a')"),
        "scripts/star.py": script("from pkg import star", "star.run()"),
        "scripts/fixed.py": script("from pkg import loader", "loader.fixed()"),
        "scripts/load.py": script("from pkg import loader", "loader.load('x')"),
    })
    reg = ["pkg.reg:<header>", "pkg.reg:a", "pkg.reg:b", "pkg.reg:pick"]
    assert units(tmp_path, "glob") == [*reg, "pkg:<header>"]
    assert units(tmp_path, "star") == [*reg, "pkg.star:<header>", "pkg.star:run", "pkg:<header>"]
    assert units(tmp_path, "fixed") == ["pkg.loader:<header>", "pkg.loader:fixed", *reg, "pkg:<header>"]
    everything = ["pkg.loader:<header>", "pkg.loader:fixed", "pkg.loader:load", *reg,
                  "pkg.star:<header>", "pkg.star:run", "pkg:<header>"]
    assert units(tmp_path, "load") == everything


def test_unknown_module_attribute_reaches_the_whole_module(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/m.py": "for _n in ('x', 'y'):\n    pass\n\ndef f():\n    return 1\n",
        "scripts/s.py": script("from pkg import m", "m.made_at_runtime()"),
    })
    assert units(tmp_path, "s") == ["pkg.m:<header>", "pkg.m:f", "pkg:<header>"]


def test_names_bound_in_header_blocks_resolve_to_the_header(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/m.py": "try:\n    import fast as impl\nexcept ImportError:\n    def impl():\n        return _slow()\n\n"
                    "def _slow():\n    return 1\n\ndef unrelated():\n    return 2\n",
        "scripts/s.py": script("from pkg.m import impl", "impl()"),
    })
    # The header's fallback def calls _slow, so _slow is reached; unrelated is not.
    assert units(tmp_path, "s") == ["pkg.m:<header>", "pkg.m:_slow", "pkg:<header>"]


def test_digest_is_sha256_of_labels_and_dumps(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/m.py": 'import os\n\n\ndef f(x):\n    """Doc."""\n    return os.sep + x  # sep\n',
        "scripts/s.py": script("from pkg.m import f", "f('a')"),
    })
    def dump(code: str) -> str:
        return "\n".join(ast.dump(s, include_attributes=False) for s in ast.parse(code).body)
    expected = {"pkg.m:<header>": dump("import os"), "pkg.m:f": dump("def f(x):\n    return os.sep + x"),
                "pkg:<header>": ""}
    h = hashlib.sha256()
    for label in sorted(expected):
        h.update(f"{label}\0{hashlib.sha256(expected[label].encode()).hexdigest()}\n".encode())
    assert codehash.fingerprint(tmp_path / "scripts/s.py", tmp_path / "pkg") == h.hexdigest()[:16]


def test_moving_the_package_keeps_the_digests(pkg, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "deeper" / "checkout"
    shutil.copytree(pkg, elsewhere)
    assert digests(elsewhere) == digests(pkg)
    assert set(digests(pkg)) == {"a", "b"}
    assert all(len(d) == 16 and int(d, 16) >= 0 for d in digests(pkg).values())


def test_digests_do_not_depend_on_the_hash_seed(pkg):
    code = ("import sys; from xstilts import codehash; "
            f"print(codehash.fingerprints({str(pkg / 'scripts')!r}, {str(pkg / 'pkg')!r}))")
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                   text=True).stdout)
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(digests(pkg))


def test_syntax_error_names_the_file(tmp_path):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/bad.py": "def f(:\n", "scripts/s.py": script("from pkg import bad")})
    with pytest.raises(SyntaxError, match=r"bad\.py"):
        digests(tmp_path)


# --------------------------------------------------------------------------------------------
# The real repository: only facts that survive moving functions between modules.

def real_units(name: str) -> list[str]:
    return codehash.reached_units(REPO_SCRIPTS / f"{name}.py", REPO_SCRIPTS / "xstilts")


def test_repo_tables_do_not_reach_training():
    reached = real_units("make_tables")
    assert any(u.startswith("xstilts.tables:") for u in reached)
    assert not any(u.startswith("xstilts.training:") for u in reached)


def test_repo_target_training_reaches_train():
    assert "xstilts.training:train" in real_units("finetune_target")


def test_repo_data_generation_does_not_reach_training():
    reached = real_units("make_demo_dataset")
    assert not any(u.startswith(("xstilts.training:", "xstilts.tables:")) for u in reached)


def test_repo_fingerprints_cover_every_script_quickly():
    start = time.perf_counter()
    found = codehash.fingerprints(REPO_SCRIPTS, REPO_SCRIPTS / "xstilts")
    elapsed = time.perf_counter() - start
    assert set(found) == {p.stem for p in REPO_SCRIPTS.glob("*.py")}
    assert found["make_tables"] != found["finetune_target"]
    assert elapsed < 5, f"fingerprints() took {elapsed:.2f} s; the Snakefile calls it on every parse"


# ---------------------------------------------------------------------------------------------
# CachedPackage: the same fingerprints, read from a cache folder in later processes


def cached(root: Path, cache: Path, name: str) -> str:
    return codehash.CachedPackage(root / "pkg", cache).fingerprint(root / "scripts" / f"{name}.py")


def test_the_cache_answers_what_the_analysis_answers_and_is_used(pkg, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fresh = digests(pkg)
    assert {n: cached(pkg, cache, n) for n in ("a", "b")} == fresh
    [file] = (cache / "codehash").glob("*.json")
    assert sorted(json.loads(file.read_text()).values()) == sorted(fresh.values())

    # A later process reads the answers: the package is not parsed again.
    def no_parse(*args):
        raise AssertionError("parsed although the cache holds the answer")

    monkeypatch.setattr(codehash, "_parse", no_parse)
    assert {n: cached(pkg, cache, n) for n in ("a", "b")} == fresh


def test_any_edit_of_the_package_or_the_script_misses_the_cache(pkg, tmp_path):
    cache = tmp_path / "cache"
    before = {n: cached(pkg, cache, n) for n in ("a", "b")}
    # An edit that changes the fingerprint, and one that does not (a comment): both miss the
    # cache (its key is the bytes), and the answers are the analysis's.
    edit(pkg / "pkg/training.py", "level * 2", "level * 3")
    assert {n: cached(pkg, cache, n) for n in ("a", "b")} == digests(pkg) != before
    edit(pkg / "pkg/tables.py", "return [x]", "return [x]  # a list")
    assert {n: cached(pkg, cache, n) for n in ("a", "b")} == digests(pkg)
    # A new module, even one nobody imports, is a new key.
    (pkg / "pkg/extra.py").write_text("X = 1\n")
    edit(pkg / "scripts/a.py", "pipeline.train_job('p')", "pipeline.table_job('p')")
    assert cached(pkg, cache, "a") == digests(pkg)["a"] == digests(pkg)["b"]
    assert len(list((cache / "codehash").glob("*.json"))) == 4


def test_a_damaged_or_unwritable_cache_only_costs_the_computation(pkg, tmp_path):
    cache = tmp_path / "cache"
    fresh = digests(pkg)
    cached(pkg, cache, "a")
    [file] = (cache / "codehash").glob("*.json")
    file.write_text('{"half a fi')
    assert cached(pkg, cache, "a") == fresh["a"]
    assert json.loads(file.read_text()) != {}  # rewritten whole
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert cached(pkg, blocked, "b") == fresh["b"]
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XSTILTS_CACHE_DIR", str(tmp_path / "x"))
    assert codehash.default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("XSTILTS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert codehash.default_cache_dir() == tmp_path / "xdg" / "xstilts"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert codehash.default_cache_dir() == tmp_path / "home" / ".cache" / "xstilts"


def test_the_cache_keeps_the_newest_files_only(pkg, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(codehash.CachedPackage, "KEEP", 2)
    for n in range(4):
        edit(pkg / "pkg/util.py", f"return x{' ' * n}\n", f"return x{' ' * (n + 1)}\n")
        cached(pkg, cache, "a")
        time.sleep(0.01)
    kept = list((cache / "codehash").glob("*.json"))
    assert len(kept) == 2
    assert codehash.CachedPackage(pkg / "pkg", cache).library_key() + ".json" in {p.name for p in kept}
