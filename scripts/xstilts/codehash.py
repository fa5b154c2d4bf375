"""Fingerprints of the library code a rule script can execute, so the DAG sees the code it runs.

Snakemake tracks a rule's ``script:`` file, not the library it imports, and the rule scripts are
thin wrappers around ``xstilts.pipeline``. :func:`fingerprint` closes that gap: it hashes the
normalised code of every top-level *unit* of the package that a script can reach, so a job's
params (and its ``metrics.json``) change exactly when code that job may run changes.

Units and reachability
    A module's units are its top-level functions, classes (with all their methods) and simple
    assignments (``NAME = ...``, ``NAME: T = ...``, tuple targets of names). Everything else at
    top level (imports, ``__all__``, ``if``/``try``/``with`` blocks, bare calls) is the module's
    *header*, on which every reached unit of that module depends; names bound inside header
    blocks resolve to the header. Reachability starts from the names the script references
    through its imports. A unit reaches the names it references (``Name`` nodes and attribute
    chains ``mod.sub.name``), resolved against imports inside the unit (lazy imports), the
    module's own units and the module's imports, absolute or relative, followed into other
    modules of the package. The granularity is the top-level definition because
    ``xstilts.pipeline`` imports most modules lazily inside functions: a module-level import
    closure would make every rule depend on every module. Importing a package module also
    reaches the headers of it and of its parent packages (their top-level code runs at import).

Normalisation
    Each unit is ``ast.dump(..., include_attributes=False)`` of its nodes with docstrings (the
    first string-constant statement of a module, class or function body, at any depth) removed.
    Comments, blank lines, reformatting and docstrings therefore never change a digest; any
    change to the syntax tree does. The digest is sha256 over the sorted ``module:unit`` labels
    and their dumps: it does not depend on the checkout's path, set order or the hash seed.

Conservative fallbacks (static analysis cannot see these, so more code counts as reached)
    - ``globals()``, ``vars()`` or ``sys.modules[__name__]`` in a reached unit: its whole module.
    - ``getattr(m, name)``/``vars(m)`` with ``m`` a package module and ``name`` not a string
      literal: the whole of ``m`` (with a literal name it is the attribute ``m.name``).
    - ``importlib.import_module(...)``, ``__import__(...)``, ``sys.modules[...]``: the whole named
      module for a string literal naming a package module, nothing for a literal outside the
      package, the whole package for anything else (a computed or relative name).
    - ``from m import *`` of a package module: the whole of ``m``.
    - An attribute ``m.name`` that module ``m`` does not define statically: the whole of ``m``.
    "Whole module" means all its units, its header and everything its imports bind.

Known limits
    - Resolution ignores local shadowing (a local ``x`` hides a global ``x`` at run time but
      still counts as a reference): this over-approximates, never under-approximates.
    - Attributes reached through a value are not followed: after ``alias = mod`` at top level,
      ``alias.f`` reaches ``alias`` (and so ``mod``'s header), not ``mod.f``; ``getattr(obj,
      name)`` on a non-module object is not a fallback (classes are hashed whole anyway).
    - A top-level assignment whose value is never referenced is not reached, even if computing
      it has side effects; put such code in a bare statement (the header) instead.
    - Code outside the package (torch, numpy, the standard library) is ignored: the pinned
      environment covers it. Data files that modules read at run time (for example
      ``xstilts/schemas/config.schema.yaml``) are not code and are left out: their effect on a
      job reaches it through the config, hence through the rule's params.
    - The script's own code is not part of the digest: Snakemake already tracks the script file.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

DIGEST_CHARS = 16
HEADER = "<header>"

# Reach targets: ("unit", module, unit name); ("module", module): imported, so its header runs;
# ("attr", module, name): what ``from module import name`` binds, resolved only when reached
# (resolving imports while parsing would recurse on import cycles); ("whole", module): every
# unit of the module; ("all",): every module of the package.
Target = tuple


def fingerprint(script_path: str | Path, package_dir: str | Path) -> str:
    """Short hex digest of the package code that ``script_path`` can reach.

    ``package_dir`` is the package's directory (e.g. ``scripts/xstilts``); its name is the
    import name. Reformatting, comments and docstrings leave the digest unchanged.
    """
    return Package(package_dir).fingerprint(script_path)


def fingerprints(scripts_dir: str | Path, package_dir: str | Path) -> dict[str, str]:
    """Digest of every ``*.py`` directly in ``scripts_dir``, keyed by script stem.

    Parses each package module once for all scripts, so the Snakefile can call it at parse time.
    """
    package = Package(package_dir)
    return {p.stem: package.fingerprint(p) for p in sorted(Path(scripts_dir).glob("*.py"))}


def reached_units(script_path: str | Path, package_dir: str | Path) -> list[str]:
    """Sorted ``module:unit`` labels behind :func:`fingerprint` (answers "why did this rerun")."""
    return sorted(Package(package_dir).unit_digests(script_path))


class Package:
    """The parsed package: modules parsed lazily and once, shared by all scripts fingerprinted."""

    def __init__(self, package_dir: str | Path) -> None:
        self.root = Path(package_dir).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"package directory {package_dir} does not exist; pass the library's "
                                    f"directory, e.g. scripts/xstilts")
        self.name = self.root.name
        # None for a directory without __init__.py (a namespace package: importable, no code).
        self.files: dict[str, Path | None] = {}
        for path in sorted(self.root.rglob("*.py")):
            parts = path.relative_to(self.root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if all(p.isidentifier() for p in parts):
                for i in range(len(parts)):
                    self.files.setdefault(".".join((self.name, *parts[:i])), None)
                self.files[".".join((self.name, *parts))] = path
        self._modules: dict[str, _Module] = {}

    def module(self, name: str) -> _Module:
        """The analysed module ``name`` (a dotted name inside the package)."""
        if name not in self._modules:
            self._modules[name] = _Module(self, name, self.files[name])
        return self._modules[name]

    def fingerprint(self, script_path: str | Path) -> str:
        """Short hex digest of the package code ``script_path`` can reach."""
        h = hashlib.sha256()
        for label, digest in sorted(self.unit_digests(script_path).items()):
            h.update(f"{label}\0{digest}\n".encode())
        return h.hexdigest()[:DIGEST_CHARS]

    def unit_digests(self, script_path: str | Path) -> dict[str, str]:
        """``module:unit`` -> sha256 of its normalised code, for every unit the script reaches."""
        scan = _scan(_parse(Path(script_path)))
        start = _Scope(self, None, scan.imports).resolve(scan)
        out = {}
        for mod, unit in self._reach(start):
            out[f"{mod}:{unit}"] = self.module(mod).digest(unit)
        return out

    def _reach(self, start: Iterable[Target]) -> set[tuple[str, str]]:
        seen: set[Target] = set()
        stack = list(start)
        units: set[tuple[str, str]] = set()
        while stack:
            target = stack.pop()
            if target in seen:
                continue
            seen.add(target)
            kind = target[0]
            if kind == "unit":
                _, mod, unit = target
                units.add((mod, unit))
                stack.extend(self.module(mod).deps(unit))
                stack.append(("module", mod))
            elif kind == "module":
                mod = target[1]
                stack.append(("unit", mod, HEADER))
                parent = mod.rpartition(".")[0]
                if parent in self.files:
                    stack.append(("module", parent))
            elif kind == "attr":
                stack.extend(self.resolve_module_attr(target[1], target[2]))
            elif kind == "whole":
                module = self.module(target[1])
                stack.extend(("unit", module.name, u) for u in module.units)
                stack.extend(module.import_targets())
            elif kind == "all":
                stack.extend(("whole", m) for m in self.files)
        return units

    def resolve_module_attr(self, mod: str, attr: str) -> set[Target]:
        """What ``mod.attr`` can be: units, import bindings or a submodule; whole module if none."""
        module = self.module(mod)
        found: set[Target] = set()
        if attr in module.bindings:
            found |= module.bindings[attr]
        sub = f"{mod}.{attr}"
        if sub in self.files:
            found.add(("module", sub))
        return found or {("whole", mod)}

    def concrete(self, targets: Iterable[Target]) -> set[Target]:
        """``targets`` with every ``attr`` target replaced by what it binds (import cycles end)."""
        out: set[Target] = set()
        seen: set[Target] = set()
        stack = list(targets)
        while stack:
            target = stack.pop()
            if target in seen:
                continue
            seen.add(target)
            if target[0] == "attr":
                stack.extend(self.resolve_module_attr(target[1], target[2]))
            else:
                out.add(target)
        return out

    def absolute(self, name: str | None) -> bool:
        """Whether ``name`` is a module of the package (anything else is ignored)."""
        return name in self.files


class CachedPackage:
    """:meth:`Package.fingerprint` with its answers kept in a cache folder between processes.

    Fingerprinting the dozen rule scripts parses and dumps the whole package, about a second of
    CPU at every Snakemake start (a dry run, a cluster job). The answer depends only on the bytes
    of the package's ``*.py`` files and their paths in it, the script's bytes, this module's own
    code and the Python version (``ast.dump`` differs between versions): the cache is keyed by a
    sha256 over exactly those, so an edit anywhere in the package, or to this analysis, misses
    it. One JSON file per key maps the sha256 of a script's bytes to its fingerprint.

    The folder is ``XSTILTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/xstilts``, else
    ``~/.cache/xstilts`` (subfolder ``codehash``). A folder that cannot be written, or a cache
    file that cannot be read, only costs the computation; writes are atomic (a temporary file
    renamed), so concurrent runs never read half a file. The newest ``KEEP`` files are kept.
    """

    KEEP = 64

    def __init__(self, package_dir: str | Path, cache_dir: str | Path | None = None) -> None:
        self.package = Package(package_dir)  # lists the files; modules are parsed on a cache miss only
        self.folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "codehash"
        self._file: Path | None = None
        self._entries: dict[str, str] | None = None

    def library_key(self) -> str:
        """sha256 over what every fingerprint of this package depends on but the script: the
        files the analysis reads (``Package.files``), this module and the Python version."""
        root = self.package.root
        h = hashlib.sha256()
        h.update(f"{sys.version}\0{root.name}\0".encode())
        h.update(Path(__file__).read_bytes())
        for path in sorted(p for p in self.package.files.values() if p is not None):
            h.update(f"\0{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
        return h.hexdigest()

    def fingerprint(self, script_path: str | Path) -> str:
        """Same value as ``Package(package_dir).fingerprint(script_path)``."""
        entries = self._load()
        key = hashlib.sha256(Path(script_path).read_bytes()).hexdigest()
        if key not in entries:
            entries[key] = self.package.fingerprint(script_path)
            self._save()
        return entries[key]

    def _load(self) -> dict[str, str]:
        if self._entries is None:
            self._file = self.folder / f"{self.library_key()}.json"
            try:
                entries = json.loads(self._file.read_text(encoding="utf-8"))
                self._entries = {k: v for k, v in entries.items() if isinstance(v, str)}
            except (OSError, ValueError, AttributeError):
                self._entries = {}
        return self._entries

    def _save(self) -> None:
        assert self._file is not None and self._entries is not None
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._entries, f, sort_keys=True)
            os.replace(tmp, self._file)
            tmp = None
            files = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
            for path in files[self.KEEP:]:
                path.unlink(missing_ok=True)
        except OSError:
            pass  # no cache here: every start computes the fingerprints, nothing else changes
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def default_cache_dir() -> Path:
    """``XSTILTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/xstilts``, else ``~/.cache/xstilts``."""
    if os.environ.get("XSTILTS_CACHE_DIR"):
        return Path(os.environ["XSTILTS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xstilts"


class _Module:
    """One module: its units, their bindings and, lazily, their dependencies and dumps."""

    def __init__(self, package: Package, name: str, path: Path | None) -> None:
        self.package = package
        self.name = name
        self.is_package = path is None or path.name == "__init__.py"
        tree = _parse(path) if path is not None else ast.Module(body=[], type_ignores=[])
        _strip_docstring(tree)
        self.nodes: dict[str, list[ast.stmt]] = {HEADER: []}
        header_bindings: set[str] = set()
        for stmt in tree.body:
            names = _unit_names(stmt)
            if names:
                for n in names:
                    self.nodes.setdefault(n, []).append(stmt)
            else:
                self.nodes[HEADER].append(stmt)
                header_bindings |= _bound_names(stmt)
        self._scans: dict[int, _Scan] = {}
        self._deps: dict[str, set[Target]] = {}
        self._digests: dict[str, str] = {}
        self.scope = _Scope(package, self, self.scan(HEADER).imports)
        # name -> targets. Header imports bind code elsewhere; the other names bound inside
        # header blocks (a def in try/except, an assignment under if) resolve to the header.
        self.bindings: dict[str, set[Target]] = {}
        for n in self.nodes:
            if n != HEADER:
                self.bindings.setdefault(n, set()).add(("unit", name, n))
        for n, targets in self.scope.imports.items():
            self.bindings.setdefault(n, set()).update(targets)
        for n in header_bindings - set(self.scope.imports):
            self.bindings.setdefault(n, set()).add(("unit", name, HEADER))

    @property
    def units(self) -> list[str]:
        """Every unit of the module, the header included."""
        return list(self.nodes)

    def scan(self, unit: str) -> _Scan:
        """What the unit's code mentions; each statement is scanned (and stripped) only once."""
        total = _Scan()
        for stmt in self.nodes[unit]:
            if id(stmt) not in self._scans:
                self._scans[id(stmt)] = _scan(stmt)
            total.extend(self._scans[id(stmt)])
        return total

    def deps(self, unit: str) -> set[Target]:
        """Targets unit ``unit`` references, plus the modules its import statements load."""
        if unit not in self._deps:
            scan = self.scan(unit)
            scope = self.scope if unit == HEADER else _Scope(self.package, self, scan.imports)
            self._deps[unit] = scope.resolve(scan)
        return self._deps[unit]

    def dump(self, unit: str) -> str:
        """The unit's normalised code: its AST without docstrings and positions."""
        self.scan(unit)  # strips the docstrings first
        return "\n".join(ast.dump(s, include_attributes=False) for s in self.nodes[unit])

    def digest(self, unit: str) -> str:
        """sha256 of :meth:`dump`, computed once per unit."""
        if unit not in self._digests:
            self._digests[unit] = hashlib.sha256(self.dump(unit).encode()).hexdigest()
        return self._digests[unit]

    def import_targets(self) -> Iterator[Target]:
        """Everything the module's top-level imports bind (what a star import re-exports)."""
        for targets in self.scope.imports.values():
            yield from targets
        yield from self.scope.star_targets

    def package_name(self) -> str:
        """The package relative imports in this module start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


class _Scan:
    """What a block of code mentions: imports, name chains and dynamic lookups (unresolved)."""

    def __init__(self) -> None:
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.chains: list[list[str]] = []
        self.whole_of: list[list[str]] = []  # getattr(m, <expr>) / vars(m): whole of m if a module
        self.own_whole = False  # globals(), vars(), sys.modules[__name__]
        self.modules: list[str | None] = []  # import_module / __import__ / sys.modules[...] keys

    def extend(self, other: _Scan) -> None:
        self.imports += other.imports
        self.chains += other.chains
        self.whole_of += other.whole_of
        self.own_whole |= other.own_whole
        self.modules += other.modules


def _scan(root: ast.AST) -> _Scan:
    """One pass over ``root``: strips nested docstrings and records what the code mentions."""
    out = _Scan()
    stack = [root]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            out.chains.append([node.id])
            continue
        if kind is ast.Attribute:
            chain = _attribute_chain(node)
            if chain is not None:
                out.chains.append(chain)
                continue
        elif kind is ast.Import or kind is ast.ImportFrom:
            out.imports.append(node)
            continue
        elif kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef:
            _strip_docstring(node)
        elif kind is ast.Call:
            _scan_call(node, out)
        elif kind is ast.Subscript and _attribute_chain(node.value) == ["sys", "modules"]:
            key = node.slice
            if isinstance(key, ast.Name) and key.id == "__name__":
                out.own_whole = True
            else:
                out.modules.append(key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None)
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                stack.append(value)
    return out


def _scan_call(node: ast.Call, out: _Scan) -> None:
    func, args = node.func, node.args
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name == "globals" or (name == "vars" and not args):
        out.own_whole = True
    elif name in ("getattr", "vars") and args:
        chain = _attribute_chain(args[0])
        if chain is None:
            return
        key = args[1] if name == "getattr" and len(args) > 1 else None
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            out.chains.append([*chain, key.value])
        else:
            out.whole_of.append(chain)
    elif name in ("import_module", "__import__"):
        key = args[0] if args else None
        out.modules.append(key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None)


class _Scope:
    """The import bindings of a code block (a unit, a header or a script), and resolution."""

    def __init__(self, package: Package, module: _Module | None,
                 imports: Iterable[ast.Import | ast.ImportFrom]) -> None:
        self.package = package
        self.module = module
        self.imports: dict[str, set[Target]] = {}
        self.imported: set[Target] = set()
        self.star_targets: set[Target] = set()
        for node in imports:
            if isinstance(node, ast.Import):
                self._import(node)
            else:
                self._import_from(node)

    def _bind(self, name: str, targets: set[Target]) -> None:
        self.imports.setdefault(name, set()).update(targets)

    def _import(self, node: ast.Import) -> None:
        for alias in node.names:
            chain = alias.name.split(".")
            modules = [m for m in (".".join(chain[:i]) for i in range(1, len(chain) + 1)) if self.package.absolute(m)]
            self.imported.update(("module", m) for m in modules)
            if alias.asname:
                if self.package.absolute(alias.name):
                    self._bind(alias.asname, {("module", alias.name)})
            elif self.package.absolute(chain[0]):
                self._bind(chain[0], {("module", chain[0])})

    def _import_from(self, node: ast.ImportFrom) -> None:
        base = self._from_base(node)
        if not self.package.absolute(base):
            return
        self.imported.add(("module", base))
        for alias in node.names:
            if alias.name == "*":
                self.star_targets.add(("whole", base))
                continue
            if self.package.absolute(f"{base}.{alias.name}"):
                self.imported.add(("module", f"{base}.{alias.name}"))  # loaded even if never used
            self._bind(alias.asname or alias.name, {("attr", base, alias.name)})

    def _from_base(self, node: ast.ImportFrom) -> str | None:
        if not node.level:
            return node.module
        if self.module is None:
            return None  # a relative import in a top-level script cannot reach the package
        parts = self.module.package_name().split(".")
        if node.level - 1 >= len(parts):
            return None
        base = ".".join(parts[:len(parts) - (node.level - 1)])
        return f"{base}.{node.module}" if node.module else base

    def lookup(self, name: str) -> set[Target]:
        """Targets ``name`` may denote here: local imports and the module's own bindings."""
        found = set(self.imports.get(name, ()))
        if self.module is not None:
            found |= self.module.bindings.get(name, set())
        return found

    def chain_targets(self, chain: list[str]) -> set[Target]:
        """Resolve ``a.b.c``: follow modules attribute by attribute; a unit ends the chain."""
        current = self.package.concrete(self.lookup(chain[0]))
        reached: set[Target] = set()
        for attr in chain[1:]:
            following: set[Target] = set()
            for target in current:
                reached.add(target)
                if target[0] == "module":
                    following |= self.package.resolve_module_attr(target[1], attr)
            current = self.package.concrete(following)
        return reached | current

    def resolve(self, scan: _Scan) -> set[Target]:
        """Every package target the scanned code may reach."""
        found = self.imported | self.star_targets
        for chain in scan.chains:
            found |= self.chain_targets(chain)
        for chain in scan.whole_of:
            found |= {("whole", t[1]) for t in self.chain_targets(chain) if t[0] == "module"}
        if scan.own_whole and self.module is not None:
            found.add(("whole", self.module.name))
        for name in scan.modules:
            if self.package.absolute(name):
                found.add(("whole", name))
            elif name is None or name.startswith(".") or name.split(".")[0] == self.package.name:
                found.add(("all",))  # unknown, relative or not a file: anything in the package
        return found


def _attribute_chain(node: ast.expr) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None when the chain does not start at a plain name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise SyntaxError(f"cannot fingerprint {path}: it does not parse ({err.msg}, line {err.lineno}); "
                          f"fix the syntax error") from err


def _unit_names(stmt: ast.stmt) -> list[str]:
    """Names a top-level statement defines as its own unit; [] for header statements."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, ast.Assign):
        per_target = [_target_names(t) for t in stmt.targets]
        names = [n for ns in per_target for n in ns] if all(per_target) else []
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        names = _target_names(stmt.target)
    else:
        return []
    # __all__ steers star imports, so it belongs to the header with the imports.
    if not names or "__all__" in names:
        return []
    return names


def _target_names(target: ast.expr) -> list[str]:
    """Names an assignment target binds; [] if it also stores elsewhere (``x.a, y = ...``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        names = [_target_names(e.value if isinstance(e, ast.Starred) else e) for e in target.elts]
        return [n for ns in names for n in ns] if all(names) else []
    return []


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Module-level names a header statement binds (outside function and class bodies)."""
    names: set[str] = set()
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        # Imports are not listed: _Scope binds those that lead into the package.
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _strip_docstring(node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """Drop the first statement of the body if it is a string constant (the docstring)."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        del body[0]


def main(argv: list[str] | None = None) -> int:
    """``python -m xstilts.codehash SCRIPT...``: the digest and the reached units of each script."""
    parser = argparse.ArgumentParser(prog="python -m xstilts.codehash", description=main.__doc__)
    parser.add_argument("scripts", nargs="+", type=Path, help="rule scripts to explain")
    parser.add_argument("--package", type=Path, default=Path(__file__).resolve().parent,
                        help="the package directory (default: this xstilts)")
    args = parser.parse_args(argv)
    package = Package(args.package)
    for script in args.scripts:
        print(f"{script}: {package.fingerprint(script)}")
        for label, digest in sorted(package.unit_digests(script).items()):
            print(f"  {digest[:DIGEST_CHARS]}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
