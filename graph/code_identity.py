"""What a node's code is, for its cache key: a digest of the source files it is declared in.

The disk cache outlives the process. Keyed on a node's name and `version` alone, a result
computed by yesterday's code would be served after the code changed (a plugin edited, a
latentgraph upgrade), and two plugins declaring the same name in turn would share results.
So a node's key also holds the digest of its code: the files of the package it is declared in
(sub-packages included: a node's helpers usually live beside it), or the file alone for a
module outside any package (a single-file plugin in a `--nodes-dir` folder). `version` stays
for what the digest cannot see: code outside that package, or a model the node downloads.

The files digest is taken once per package per process, when its first node is declared: the
files then on disk are the ones being imported (edit them, restart the process).

A function whose own file is not among the files read (a notebook cell, `python -c`, `exec`,
a module imported from a zip or compiled without its source), or that a script declares (the
module `__main__`: `python my.py`, whose loop or prompt changes the globals the node reads), is
also digested from its code object: what the function does (its bytecode, constants and
names, nested code included), its parameters' defaults (`__defaults__`, `__kwdefaults__`: not
in the code object, and the usual way to make an input optional; plain values by repr, others
by type alone), the same module's functions and plain values it names and its closure's cells
holding them (a node made by a factory: `make(2)`, `make(3)`), never its file name or line
numbers, which a notebook changes each time a cell runs. Helpers elsewhere it reaches
otherwise (an attribute of an imported module) are not seen: `version` covers them. Those
globals and cells change within a process (a later cell sets `SCALE = 3`, redefines a helper),
so that digest is taken again by each run computing keys (`Code.digest`, once per run per node
type), not only at declaration.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any

# A package bigger than this is hashed up to it (a plugin kept inside a large repository):
# the files read first still change the digest when they change.
MAX_BYTES = 64 << 20
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
# Global values a function names that go into its code-object digest by their repr.
_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_digests: dict[tuple[str, ...], tuple[str, frozenset[Path]]] = {}


@dataclass(frozen=True)
class Code:
    """A node function's code as its cache key sees it, taken when the node is declared."""

    files: str = ""  # the files digest of its package (or file), taken at declaration
    # The function, when its own file is not among those files: digested from its code
    # object each time `digest` is asked (its globals and closure change within a process)
    fn: Callable[..., Any] | None = None

    def digest(self) -> str:
        """The digest as it is now: the files digest alone, or with `function_digest`."""
        if self.fn is None:
            return self.files
        return hashlib.sha256(f"{self.files}\0{function_digest(self.fn)}".encode()).hexdigest()


def code_of(fn: Callable[..., Any]) -> Code:
    """`fn`'s `Code`: the files digest of the package it is declared in, and `fn` itself when
    its own file is not among those files, or when it is a script's (then digested from its
    code object too)."""
    files_digest, read = _module_files(fn)
    code = getattr(fn, "__code__", None)
    in_files = isinstance(code, CodeType) and Path(code.co_filename) in read
    if files_digest and in_files and not _in_script(fn):
        return Code(files_digest)
    return Code(files_digest, fn)


def _in_script(fn: Callable[..., Any]) -> bool:
    """Whether `fn` is declared in the script Python was started with (`python my.py`,
    `python -i my.py`, `%run my.py`: the module `__main__`), whose globals the script itself
    changes as it runs (`for SCALE in (0.5, 0.25): run(...)`), or a prompt after it does, so
    its file's text alone cannot identify its code."""
    return getattr(fn, "__module__", None) == "__main__"


def code_digest(fn: Callable[..., Any]) -> str:
    """The digest of `fn`'s code as it is now (`code_of(fn).digest()`)."""
    return code_of(fn).digest()


def _module_files(fn: Callable[..., Any]) -> tuple[str, frozenset[Path]]:
    """The files digest of the package (or file) `fn`'s module is in, and the files it read;
    ("", nothing) when the module has no files."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None:
        return "", frozenset()
    package = module.__name__ if hasattr(module, "__path__") else module.__package__ or ""
    holder = sys.modules.get(package) if package else None
    if holder is not None and getattr(holder, "__path__", None):
        roots = tuple(str(p) for p in holder.__path__)
    elif getattr(module, "__file__", None):
        roots = (str(module.__file__),)
    else:
        return "", frozenset()
    if roots not in _digests:
        _digests[roots] = _files_digest(roots)
    return _digests[roots]


def _files_digest(roots: tuple[str, ...]) -> tuple[str, frozenset[Path]]:
    """sha256 over each Python file's path (relative to its root) and bytes, in order; the files
    read."""
    h = hashlib.sha256(b"code\0")
    budget = MAX_BYTES
    read: set[Path] = set()
    for root in roots:
        base = Path(root)
        files = [base] if base.is_file() else sorted(_sources(base))
        for file in files:
            try:
                data = file.read_bytes()[: max(budget, 0)]
            except OSError:
                continue
            read.add(file)
            budget -= len(data)
            name = file.name if file == base else file.relative_to(base).as_posix()
            h.update(f"{name}\0{len(data)}\0".encode())
            h.update(data)
            if budget <= 0:
                return h.hexdigest(), frozenset(read)
    return h.hexdigest(), frozenset(read)


def _sources(folder: Path):
    """The package's Python files: sources, and the .pyc of a package shipped without them."""
    for path in (*folder.rglob("*.py"), *folder.rglob("*.pyc")):
        parts = path.relative_to(folder).parts
        if not any(p in _SKIPPED_DIRS or p.startswith(".") for p in parts[:-1]):
            yield path


def function_digest(fn: Callable[..., Any]) -> str:
    """A digest of what `fn`'s code does, the same in every process running this Python: its
    code object and, by name, the functions and plain values of its own module it uses, and
    its closure's cells holding such values."""
    return hashlib.sha256(_function_text(fn, set()).encode()).hexdigest()


def _function_text(fn: Any, seen: set[int]) -> str:
    seen.add(id(fn))
    code = getattr(fn, "__code__", None)
    if not isinstance(code, CodeType):
        return f"object {type(fn).__qualname__}"  # a callable object: its type only
    names: set[str] = set()
    parts = [_code_text(code, names)]
    defaults, kwdefaults = fn.__defaults__ or (), fn.__kwdefaults__ or {}
    if defaults or kwdefaults:
        given = ",".join(f"{k}={_constant_text(v, names)}" for k, v in sorted(kwdefaults.items()))
        parts.append(f"defaults {_constant_text(defaults, names)};{given}")
    scope = getattr(fn, "__globals__", {})
    for name in sorted(names):
        parts.append(_reached_text(f"global {name}", scope.get(name), fn, seen))
    for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not yet set
            value = None
        parts.append(_reached_text(f"cell {name}", value, fn, seen))
    return "\0".join(p for p in parts if p)


def _reached_text(label: str, value: Any, fn: Any, seen: set[int]) -> str:
    """A value `fn` reaches by a global name or a closure cell, as text: a plain value by its
    repr, a function of `fn`'s own module by its code (once); anything else not seen ("")."""
    if isinstance(value, _PLAIN):
        return f"{label}={value!r}"
    if isinstance(value, FunctionType) and value.__module__ == fn.__module__:
        if id(value) not in seen:
            return f"{label}:{_function_text(value, seen)}"
    return ""


def _code_text(code: CodeType, names: set[str]) -> str:
    """`code` and the code nested in it as text, without file name or line numbers; the
    global names they use added to `names`."""
    names.update(code.co_names)
    consts = ",".join(_constant_text(c, names) for c in code.co_consts)
    shape = (code.co_argcount, code.co_kwonlyargcount, code.co_flags)
    table = code.co_exceptiontable.hex() if sys.version_info >= (3, 11) else ""
    fields = (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
    return f"code({code.co_code.hex()};{table};{fields};{shape};{consts})"


def _constant_text(const: Any, names: set[str]) -> str:
    if isinstance(const, CodeType):
        return _code_text(const, names)
    if isinstance(const, tuple):
        return f"tuple({','.join(_constant_text(c, names) for c in const)})"
    if isinstance(const, frozenset):  # its order follows string hashes, which differ per process
        return f"frozenset({','.join(sorted(_constant_text(c, names) for c in const))})"
    if isinstance(const, _PLAIN) or const is Ellipsis:
        return f"{type(const).__name__}:{const!r}"
    # Only a default is anything else: its type alone (a repr may hold an address, which
    # differs per process, and the digest must not)
    return f"object {type(const).__qualname__}"
