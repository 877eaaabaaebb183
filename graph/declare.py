"""Declaring node types: the one place a node is described.

A node type is a plain Python function plus a `NodeType` record built by the `@node` decorator.
Everything else (validation, the workflow JSON Schema, ComfyUI's /object_info, `latentgraph nodes`)
is derived from that record, so a node is never described twice.

    @node(
        "LatentNoise",
        category="latent",
        inputs=[Int("width", 512, min=8, max=8192, step=8), Int("seed", 0, seed=True)],
        outputs=[Output("latent", LATENT)],
    )
    def latent_noise(ctx, width, seed):
        ...

This module must stay light: it never imports torch.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .code_identity import Code, code_of
from .context import LIMITS, Settings, limit_label
from .plugin_files import shown_file
from .problems import with_article

if TYPE_CHECKING:
    from .plugins import PluginFailure

_log = logging.getLogger("latentgraph.declare")

# Socket types. Names match ComfyUI's where the meaning matches, so editor colours and
# ComfyUI workflows line up.
MODEL = "MODEL"
CLIP = "CLIP"
VAE = "VAE"
SCHEDULER = "SCHEDULER"
CONDITIONING = "CONDITIONING"
LATENT = "LATENT"
IMAGE = "IMAGE"
MASK = "MASK"  # float32 [B, H, W] in 0..1; 1 marks the area to change (ComfyUI's meaning)
ANY = "*"
# The custom-sampling family (ComfyUI's SamplerCustom): noise levels, starting noise, sampler,
# guider as values on sockets.
SIGMAS = "SIGMAS"
NOISE = "NOISE"
SAMPLER = "SAMPLER"
GUIDER = "GUIDER"

# Widget (literal) types.
INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"
BOOLEAN = "BOOLEAN"
COMBO = "COMBO"
WIDGET_TYPES = frozenset({INT, FLOAT, STRING, BOOLEAN, COMBO})

# The keys a node's mapping in our workflow format holds for the node itself, beside its inputs
# (`nodes: {n: {type: ..., title: ..., <inputs>}}`): the reader takes them as the node's, so
# no input may be named so (`Input.problems`).
RESERVED_NODE_KEYS = ("type", "title")


class _Required:
    """Marker for an input without a default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Aliases:
    """An `also_accepts` of fixed words: other spellings a list of choices takes beside its
    own (an earlier version's value, still read: LoadVAE's `config: builtin:tiny-sd` for
    `tiny-sd`). A dropdown lists the choices only (`nodes`, /object_info, docs/nodes.md);
    the workflow schema, which cannot call a function, names these too, so an editor checking
    a file against it takes what `latentgraph validate` takes."""

    names: tuple[str, ...]

    def __call__(self, value: str, settings: Settings) -> bool:
        return value in self.names


@dataclass(frozen=True)
class Input:
    """One named input of a node type.

    `kind` says how a value arrives: "widget" (a literal typed in the workflow, or, as in
    ComfyUI, a link from an output of the same type) or "socket" (a link only).
    `choices` is a list, or a callable taking the run's `Settings` and returning one (file
    pickers list the files of the configured folders at call time); `also_accepts(value,
    settings)` takes a text value the list does not hold (LoadImage's 'name [output]', which
    ComfyUI's editor writes and does not list; `Aliases`: a few fixed words, which the schema
    names too); `choices_hint` says where the choices come from, named when a value is not
    among them (a models folder's files): a text, or a function `(value, settings)` of the
    value refused (None when none was given) and the run's settings, since where a file picker
    looked is the run's folders (`hint_for`). `limit` names the
    `Settings` limit (or a tuple of limits) that bounds the value (see `context.LIMITS`):
    validation enforces it.
    """

    name: str
    type: str
    default: Any = REQUIRED
    kind: str = "widget"
    min: float | None = None
    max: float | None = None
    step: float | None = None
    round: float | None = None
    choices: Sequence[str] | Callable[[Settings], Sequence[str]] | None = None
    also_accepts: Callable[[str, Settings], bool] | None = None
    choices_hint: str | Callable[[Any, Settings], str] = ""
    multiline: bool = False
    # The editor strips // and /* */ comments from the text and picks one of each {a|b|c}
    # when it queues a prompt (ComfyUI's "dynamicPrompts"; CLIPTextEncode declares it).
    dynamic_prompts: bool = False
    description: str = ""
    optional: bool = False
    seed: bool = False  # the editor adds a randomize/increment control after it
    image_upload: bool = False
    max_length: int | None = None  # for STRING: refuse longer literals at validation
    limit: str | tuple[str, ...] | None = None
    canonical: Callable[[Any, Settings], Any] | None = None
    # The models folder kind (`checkpoints`, `loras`, ...) whose files this dropdown lists:
    # the server's /models/<kind> answers what such dropdowns list (built-in models too).
    models_folder: str = ""
    # latentgraph's own input on a node that has ComfyUI's name (VAEDecode's `tiled`): ComfyUI's
    # node has no such widget, so files ComfyUI saves hold no value for it and its editor's
    # group nodes list none. ComfyUI's files are read by ComfyUI's widget list (the extras
    # after it), /object_info offers it as an input socket, not a widget (`forceInput`);
    # a workflow file or an API prompt sets it by name. It must be optional.
    comfy_extra: bool = False

    @property
    def limit_names(self) -> tuple[str, ...]:
        """The run limits bounding this input (`limit`, as a tuple)."""
        if self.limit is None:
            return ()
        return (self.limit,) if isinstance(self.limit, str) else tuple(self.limit)

    def problems(self) -> list[str]:
        """What is wrong with this declaration, each said after "input 'x': ". Its node type
        refuses to be built with any (`NodeType`), so a mistake shows when `@node` runs, not
        when a workflow happens to use the default."""
        bounds, kind = self._bounds_problem(), self._default_type_problem()
        found = [socket_type_problem(self.type), self._name_problem(), self._limit_problem(),
                 bounds, kind,
                 self._canonical_problem(), self._comfy_extra_problem()]  # fmt: skip
        if kind is None:  # a default of the right type: is it one this input accepts?
            found.append(self._default_choice_problem())
            if bounds is None:
                found.append(self._default_range_problem())
        return [problem for problem in found if problem is not None]

    def _name_problem(self) -> str | None:
        """A name our workflow format keeps for the node itself: no workflow file could set
        the input, and one converted to YAML would write its value as the node's own."""
        if self.name in RESERVED_NODE_KEYS:
            return (f"{self.name!r} is the node's own key in a workflow file (reserved: "
                    f"{', '.join(RESERVED_NODE_KEYS)}), so no workflow could set this input; "
                    "rename it")  # fmt: skip
        return None

    def _limit_problem(self) -> str | None:
        unknown = [name for name in self.limit_names if name not in LIMITS]
        if unknown:
            return f"unknown limit {unknown[0]!r}; known: {', '.join(LIMITS)}"
        return None

    def _canonical_problem(self) -> str | None:
        if self.canonical is not None and not callable(self.canonical):
            return (f"canonical {self.canonical!r} is not callable; expected a function "
                    "(value, settings) -> the value its cache key holds")  # fmt: skip
        return None

    def _comfy_extra_problem(self) -> str | None:
        """A file saved by ComfyUI has no value for an extra: it must do without one."""
        if self.comfy_extra and not self.optional:
            return "comfy_extra needs optional=True: files ComfyUI saves hold no value for it"
        return None

    def _bounds_problem(self) -> str | None:
        if self.min is not None and self.max is not None and self.min > self.max:
            return f"min {number_text(self.min)} is above max {number_text(self.max)}"
        return None

    def _has_default(self) -> bool:
        """A default to check: None is the 'not given' of an optional input (validation
        lets a null through for it too)."""
        return self.default is not REQUIRED and self.default is not None

    def _default_type_problem(self) -> str | None:
        """A widget's default is a value of its type: a bool is not an INT, an int is a FLOAT."""
        expected = _DEFAULT_TYPES.get(self.type) if isinstance(self.type, str) else None
        if not self._has_default() or expected is None or expected[0](self.default):
            return None
        return f"default {self.default!r} is not {expected[1]} ({self.type})"

    def _default_range_problem(self) -> str | None:
        if not self._has_default() or self.type not in (INT, FLOAT):
            return None
        if self.min is not None and self.default < self.min:
            return f"default {number_text(self.default)} is below its min {number_text(self.min)}"
        if self.max is not None and self.default > self.max:
            return f"default {number_text(self.default)} is above its max {number_text(self.max)}"
        return None

    def _default_choice_problem(self) -> str | None:
        """A listed default is one of the listed choices (choices computed at run time, the
        files of a folder, cannot be known here)."""
        if not self._has_default() or self.choices is None or callable(self.choices):
            return None
        if self.default in self.choices:
            return None
        listed = ", ".join(repr(c) for c in self.choices) or "(none)"
        return f"default {self.default!r} is not one of its choices: {listed}"

    @property
    def required(self) -> bool:
        """A workflow must give it: not optional, and no default. A dropdown whose choices a
        function lists at run time (a folder's files) has none when it declares None: None is
        none of its choices, and its node was handed None, which it could not open."""
        if self.optional:
            return False
        return self.default is REQUIRED or (self.default is None and callable(self.choices))

    @property
    def takes_null(self) -> bool:
        """Whether null is a value of it, "not given" (the function gets None): an optional
        input's, or one declaring None as its default that is not `required`."""
        return self.optional or (self.default is None and not self.required)

    @property
    def default_checked_at_run(self) -> bool:
        """Its default is one of choices listed at run time, which its declaration cannot
        check (`_default_choice_problem`): validation checks it when a workflow leaves the
        input out, as a value written for it."""
        return self._has_default() and callable(self.choices)

    @property
    def accepts_literal(self) -> bool:
        return self.kind == "widget"

    def literal(self, value: Any) -> Any:
        """A value written for this input in a workflow, as the input takes it: an int for a
        FLOAT is the float it equals, so `strength: 0` and `strength: 0.0` are one value with
        one cache key (the node ran twice for them). Anything else is kept as written, for
        validation to judge."""
        if self.type == FLOAT and type(value) is int:
            try:
                return float(value)
            except OverflowError:  # digits past a float: validation says what is wrong
                return value
        return value

    @property
    def takes_text(self) -> bool:
        """Its literal is text (a string or a choice): `--set` keeps the value as written."""
        return self.type in (STRING, COMBO)

    def choice_list(self, settings: Settings | None = None) -> list[str]:
        """The choices, listed for `settings` (default settings when none are given)."""
        if self.choices is None:
            return []
        if callable(self.choices):
            return list(self.choices(settings if settings is not None else Settings()))
        return list(self.choices)

    def choices_or_failure(self, settings: Settings | None = None) -> tuple[list[str], str]:
        """The choices (`choice_list`) and "", or, when the choices function raises (a file
        picker whose folder is gone), none and why, worded once for every reader: validation
        refuses a value with it, `NodeType.shown_choices` warns with it."""
        try:
            return self.choice_list(settings), ""
        except Exception as exc:  # noqa: BLE001 - a plugin's function: anything may fail
            return [], f"could not list the choices: {exc}"

    def hint_for(self, value: Any, settings: Settings) -> str:
        """`choices_hint` for a refused `value` (None: no value given) under `settings`."""
        if callable(self.choices_hint):
            return self.choices_hint(value, settings)
        return self.choices_hint


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# widget type -> (whether a default is of that type, how the type is said)
_DEFAULT_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    INT: (_is_int, "an integer"),
    FLOAT: (_is_number, "a number"),
    STRING: (lambda value: isinstance(value, str), "text"),
    BOOLEAN: (lambda value: isinstance(value, bool), "true or false"),
}


def number_text(value: float) -> str:
    """A declared number as people read it: an integer exactly (16777215, not 1.67772e+07),
    a fraction as short as it round-trips (0.01)."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 2**63):  # fmt: skip
        return str(int(value))
    return repr(value)


# The Python types a declaration may give where a socket type's name belongs, and that name.
_PYTHON_TYPE_NAMES: dict[type, str] = {str: STRING, int: INT, float: FLOAT, bool: BOOLEAN}
_TYPE_NAME_ADVICE = "give a socket type's name (STRING, IMAGE, ..., or your own: 'MY_THING')"


def socket_type_problem(socket_type: Any) -> str | None:
    """What is wrong with the type an input or output declares, said after "input 'x': " or
    "output 'y': ". A socket type is a name: a Python class or a number there cannot be sent
    to the editor (/object_info is JSON: one plugin's `Output("t", str)` made it answer 500)
    nor matched against the type of a link."""
    if isinstance(socket_type, str):
        return None if socket_type.strip() else f"an empty socket type: {_TYPE_NAME_ADVICE}"
    if isinstance(socket_type, type):
        meant = _PYTHON_TYPE_NAMES.get(socket_type)
        advice = f"use {meant}" if meant else _TYPE_NAME_ADVICE
        return f"type {socket_type.__name__} is a Python type, not a socket type: {advice}"
    return f"type {socket_type!r} is not a socket type: {_TYPE_NAME_ADVICE}"


@dataclass(frozen=True)
class Output:
    """One named output of a node type."""

    name: str
    type: str
    description: str = ""
    is_list: bool = False

    def problems(self) -> list[str]:
        """What is wrong with this declaration, each said after "output 'y': " (`NodeType`
        refuses to be built with any)."""
        found = [socket_type_problem(self.type)]
        return [problem for problem in found if problem is not None]


@dataclass
class NodeResult:
    """What a node function may return instead of bare values.

    `ui` is shown to the user (ComfyUI's `executed` output, e.g. {"images": [...]}) and is
    cached with the values so a cached output node still reports its files.
    """

    values: tuple = ()
    ui: dict[str, Any] | None = None


@dataclass
class NodeType:
    """Everything the engine knows about one kind of node."""

    name: str
    fn: Callable[..., Any]
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    version: int = 1
    category: str = "latentgraph"
    display_name: str = ""
    description: str = ""
    deterministic: bool = True
    output_node: bool = False
    # Extra identity for the cache key, from the node's literal inputs and the run's settings:
    # e.g. a weights file's path + size + mtime, so replacing a checkpoint on disk invalidates
    # what was built from it; SaveImage's output folder, so a run writing elsewhere saves there.
    identity: Callable[[dict[str, Any], Settings], str] | None = None
    # Whether a cached result still stands for this run, given its ui, the node's literal
    # inputs and the run's settings (SaveImage: its files are still there, under the names its
    # prefix gives now). When it does not, the node runs again, from its cached inputs, and
    # its Context carries the refused ui (`earlier_ui`).
    reuse: Callable[[dict[str, Any] | None, dict[str, Any], Settings], bool] | None = None
    # The run's `ctx.extra` entries the node writes into what it makes (SaveImage: the prompt,
    # editor workflow and our document, as PNG text chunks): part of its cache key, so a run of
    # another document (a node moved, a comment changed) writes a file carrying that one.
    embeds: tuple[str, ...] = ()
    # Cross-field checks run at validation time, after per-input checks, given the literal
    # inputs and the run's settings. Returns (input name or None, message) pairs.
    check: Callable[[dict[str, Any], Settings], list[tuple[str | None, str]]] | None = None
    module: str = ""
    # Its code as the cache key sees it (`code_identity.Code`): the digest of the source files
    # it is declared in, or of its function's code object, taken again by each run (`digest`).
    # Part of its cache key: results of code that has since changed are not served.
    code: Code = Code()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.name
        self._by_name = {i.name: i for i in self.inputs}
        self._output_index = {o.name: n for n, o in enumerate(self.outputs)}
        bounded: dict[str, list[str]] = {}
        for i in self.inputs:
            for limit in i.limit_names:
                bounded.setdefault(limit, []).append(i.name)
        # limit name -> the inputs it bounds together, in declaration order
        self.limits: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in bounded.items()}
        # (input name, its canonical hook) for the inputs declaring one (`key_literals`)
        self._canonical = tuple((i.name, i.canonical) for i in self.inputs if i.canonical)
        problems = self.declaration_problems()
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def builtin(self) -> bool:
        """Whether the node ships with latentgraph (declared in the package), not a plugin's:
        generated docs cover these, and only these are trusted to leave their inputs as given
        (a plugin's get copies, `cache.handed_out`)."""
        return self.module.startswith("latentgraph.")

    def declaration_problems(self) -> list[str]:
        """What is wrong with the declaration, each naming the node type (and the input or
        output): an empty name, an input or output declared twice, each input's and output's
        own problems (`Input.problems`, `Output.problems`)."""
        label = f"node type {self.name!r}"
        found = []
        if not isinstance(self.name, str) or not self.name.strip():
            fn = getattr(self.fn, "__qualname__", repr(self.fn))
            found.append(f"{label} (function {fn}): a node type needs a name")
        seen = set()
        for i in self.inputs:
            if i.name in seen:
                found.append(f"{label} input {i.name!r}: declared twice (input names are unique)")
            seen.add(i.name)
            found += [f"{label} input {i.name!r}: {problem}" for problem in i.problems()]
        outputs: set[str] = set()
        for o in self.outputs:
            if o.name in outputs:
                found.append(f"{label} output {o.name!r}: declared twice (output names are "
                             "unique)")  # fmt: skip
            outputs.add(o.name)
            found += [f"{label} output {o.name!r}: {problem}" for problem in o.problems()]
        return found

    def input(self, name: str) -> Input | None:
        return self._by_name.get(name)

    def shown_choices(self, decl: Input, settings: Settings | None = None) -> list[str]:
        """The choices of input `decl` as a listing shows them (`nodes describe`, `nodes
        --json`, /object_info): a choices function that raises is an empty list and a warning
        naming the node type, the input and where it is declared, so one broken picker
        neither stops a listing nor empties it unexplained."""
        choices, failure = decl.choices_or_failure(settings)
        if failure:
            at = f" ({self.declared_at})" if self.declared_at else ""
            _log.warning("node type %r input %r%s: %s; its list is shown empty",
                         self.name, decl.name, at, failure)  # fmt: skip
        return choices

    @property
    def declared_at(self) -> str:
        """The file:line of its `@node` (a decorated function's code starts at its first
        decorator), a folder plugin's file as the user named it (`shown_file`: nodes/a.py:6,
        as the plugin loader's warnings name it); empty for a callable without code."""
        code = getattr(self.fn, "__code__", None)  # the plugin's callable: a function or not
        return f"{shown_file(code.co_filename)}:{code.co_firstlineno}" if code else ""

    def key_literals(self, literals: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """The literals as the cache key holds them: each input declaring `canonical` in its
        canonical form for `settings`, the others as written (`literals` itself when no input
        declares one, so those nodes' keys are what they always were)."""
        if not self._canonical:
            return literals
        keyed = dict(literals)
        for name, canonical in self._canonical:
            if name in keyed:
                keyed[name] = canonical(keyed[name], settings)
        return keyed

    def output_index(self, name: str) -> int | None:
        return self._output_index.get(name)

    def largest_allowed(self, decl: Input, settings: Settings) -> float | None:
        """The largest value of `decl` that `limit_problems` lets through under `settings`: its
        declared maximum, or less when it declares a run limit (what /object_info advertises,
        so the editor offers no value the server refuses). Inputs sharing a limit are bounded
        by their product: one of them can reach the limit over the product of the others'
        minimums (width 16384 with height 16 is within 4096x4096 pixels). Rounded down to the
        input's step. With several limits, the lowest of their bounds."""
        highest = decl.max
        for limit in decl.limit_names:
            others = [self.input(n) for n in self.limits[limit] if n != decl.name]
            if any(o is None or o.min is None or o.min <= 0 for o in others):
                continue  # a zero in the product: the limit does not bound this input
            bound = settings.limit(limit) // math.prod(math.ceil(o.min) for o in others)
            step = int(decl.step) if decl.step and float(decl.step).is_integer() else 1
            bound -= bound % step
            highest = bound if highest is None else min(highest, bound)
        return highest

    def limit_problems(self, values: dict[str, Any], settings: Settings) -> list[tuple[str, str]]:
        """(input name, message) for each declared limit that `values` exceed under
        `settings`. A limit is checked only when all its inputs are ints, given or (left out)
        by default: an omitted batch_size is a batch of 1."""
        found = []
        for limit, names in self.limits.items():
            given = [values.get(name, self._by_name[name].default) for name in names]
            if any(type(v) is not int for v in given):
                continue
            total, bound = math.prod(given), settings.limit(limit)
            if total <= bound:
                continue
            flag = limit_label(settings, limit)
            if len(given) == 1:
                message = f"{names[0]} {total} is over the limit of {bound} ({flag})"
            else:
                message = (f"{'x'.join(map(str, given))} is {total} {LIMITS[limit]}, over the "
                           f"limit of {bound} ({flag})")  # fmt: skip
            found.append((names[0], message))
        return found


# --- input constructors: short, readable declarations -------------------------------------


def Int(name: str, default: Any = REQUIRED, *, min: float = -(2**63), max: float = 2**63 - 1,
        step: float = 1, seed: bool = False, kind: str = "widget", description: str = "",
        optional: bool = False, limit: str | tuple[str, ...] | None = None,
        comfy_extra: bool = False) -> Input:  # fmt: skip
    return Input(name, INT, default, kind=kind, min=min, max=max, step=step, seed=seed,
                 description=description, optional=optional, limit=limit,
                 comfy_extra=comfy_extra)  # fmt: skip


def Float(name: str, default: Any = REQUIRED, *, min: float = -math.inf, max: float = math.inf,
          step: float = 0.01, round: float | None = None, kind: str = "widget",
          description: str = "", optional: bool = False) -> Input:  # fmt: skip
    return Input(name, FLOAT, default, kind=kind, min=min, max=max, step=step, round=round,
                 description=description, optional=optional)  # fmt: skip


def String(name: str, default: Any = REQUIRED, *, multiline: bool = False, kind: str = "widget",
           description: str = "", optional: bool = False, max_length: int | None = None,
           dynamic_prompts: bool = False,
           canonical: Callable[[Any, Settings], Any] | None = None) -> Input:  # fmt: skip
    return Input(name, STRING, default, kind=kind, multiline=multiline, description=description,
                 optional=optional, max_length=max_length, dynamic_prompts=dynamic_prompts,
                 canonical=canonical)  # fmt: skip


def Bool(name: str, default: Any = REQUIRED, *, kind: str = "widget", description: str = "",
         optional: bool = False, comfy_extra: bool = False) -> Input:  # fmt: skip
    return Input(name, BOOLEAN, default, kind=kind, description=description, optional=optional,
                 comfy_extra=comfy_extra)  # fmt: skip


def Choice(name: str, choices: Sequence[str] | Callable[[Settings], Sequence[str]],
           default: Any = REQUIRED, *, description: str = "", optional: bool = False,
           image_upload: bool = False, kind: str = "widget",
           also_accepts: Callable[[str, Settings], bool] | None = None,
           hint: str | Callable[[Any, Settings], str] = "",
           canonical: Callable[[Any, Settings], Any] | None = None,
           models_folder: str = "") -> Input:  # fmt: skip
    return Input(name, COMBO, default, kind=kind, choices=choices, description=description,
                 optional=optional, image_upload=image_upload, also_accepts=also_accepts,
                 choices_hint=hint, canonical=canonical, models_folder=models_folder)  # fmt: skip


def Socket(name: str, type: str, *, description: str = "", optional: bool = False) -> Input:
    return Input(name, type, kind="socket", description=description, optional=optional)


# --- the registry ---------------------------------------------------------------------------


class NameClash(ValueError):
    """A node type added under a name the registry already holds (`held`, who registered it
    is its `module`). Declared again by the same module (a notebook cell run again: both are
    `__main__`'s), it says how to declare it again: a node type name is declared once per
    process (docs/custom-nodes.md)."""

    def __init__(self, held: NodeType, new: NodeType) -> None:
        self.held, self.new = held, new
        by = f" by {held.module}" if held.module else ""
        again = ""
        if held.module and held.module == new.module:
            again = ("; a node type name is declared once per process: to declare it again "
                     "(a notebook cell run again), restart the kernel (a new process), or give "
                     "it a new name")  # fmt: skip
        super().__init__(f"node type {new.name!r} is already registered{by}{again}")


class _Reports(threading.local):
    """Where a registry hands a clash or a refused declaration instead of raising it, for the
    thread declaring (`clashes_reported`, `refusals_reported`): each thread's own, so a
    thread loading plugins never collects, or resets, another thread's reports."""

    clash: Callable[[NameClash], None] | None = None
    refusal: Callable[[ValueError], None] | None = None


class Registry:
    """Node types by name. The default registry is filled by `@node` at import time."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}
        self._reports = _Reports()
        # The plugins that failed as they were last loaded into it (`plugins.load_plugins`):
        # a node type it lacks may be one of theirs, and every refusal of one says so.
        self.plugin_failures: tuple[PluginFailure, ...] = ()

    def add(self, node_type: NodeType, *, replace: bool = False) -> NodeType:
        """Register `node_type`; a name already held raises `NameClash`, or, inside
        `clashes_reported`, is reported and skipped (the type held is kept and returned)."""
        held = self._types.get(node_type.name)
        if held is not None and not replace:
            clash = NameClash(held, node_type)
            report = self._reports.clash
            if report is None:
                raise clash
            report(clash)
            return held
        self._types[node_type.name] = node_type
        return node_type

    @contextmanager
    def clashes_reported(self, report: Callable[[NameClash], None]) -> Iterator[None]:
        """While inside, a name already held is handed to `report` instead of raised: the
        first declaration wins and the code declaring the second goes on (plugin loading:
        as in ComfyUI, a plugin's clashing node is skipped and its other nodes load). In this
        thread only: another thread's clash is raised as always."""
        before, self._reports.clash = self._reports.clash, report
        try:
            yield
        finally:
            self._reports.clash = before

    def refuse(self, error: ValueError) -> None:
        """A declaration `@node` refuses (`error` names every problem of it): raised, or,
        inside `refusals_reported`, handed to the report and the code declaring it goes on,
        so a plugin's later declarations are checked too (and said all at once)."""
        report = self._reports.refusal
        if report is None:
            raise error
        report(error)

    @contextmanager
    def refusals_reported(self, report: Callable[[ValueError], None]) -> Iterator[None]:
        """While inside, a refused declaration is handed to `report` instead of raised (in this
        thread only)."""
        before, self._reports.refusal = self._reports.refusal, report
        try:
            yield
        finally:
            self._reports.refusal = before

    def remove(self, name: str) -> None:
        """Forget node type `name` (a plugin that failed to load: none of its nodes stay)."""
        self._types.pop(name, None)

    def get(self, name: str) -> NodeType | None:
        return self._types.get(name)

    def __getitem__(self, name: str) -> NodeType:
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self):
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._types)

    def __bool__(self) -> bool:
        # An empty registry is still a registry: `registry or default_registry` must keep it.
        return True

    def names(self) -> list[str]:
        return sorted(self._types)


default_registry = Registry()


def registry_or_default(registry: Registry | None) -> Registry:
    """`registry`, or the process-wide one when None. Nothing is loaded here: what it holds
    is what the program registered (the composition root, `latentgraph.wiring`, loads the
    built-in nodes and plugins)."""
    return registry if registry is not None else default_registry


def node(
    name: str,
    *,
    inputs: Sequence[Input] = (),
    outputs: Sequence[Output] = (),
    version: int = 1,
    category: str = "latentgraph",
    display_name: str = "",
    description: str = "",
    deterministic: bool = True,
    output_node: bool = False,
    identity: Callable[[dict[str, Any], Settings], str] | None = None,
    check: Callable[[dict[str, Any], Settings], list[tuple[str | None, str]]] | None = None,
    reuse: Callable[[dict[str, Any] | None, dict[str, Any], Settings], bool] | None = None,
    embeds: Sequence[str] = (),
    registry: Registry | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn(ctx, **inputs)` as a node type.

    The function returns a single value (one output), a tuple (one value per output, in
    order), or a `NodeResult`. The decorated function is returned unchanged, with the
    record attached as `fn.node_type`.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        target = registry or default_registry
        shape = _list_problems(name, inputs, outputs)
        if shape:  # nothing else can be read of lists that are none
            target.refuse(ValueError("; ".join(shape)))
            return fn
        problems = _signature_problems(name, fn, inputs)
        try:
            node_type = NodeType(
                name=name,
                fn=fn,
                inputs=tuple(inputs),
                outputs=tuple(outputs),
                version=version,
                category=category,
                display_name=display_name,
                description=description or (fn.__doc__ or "").strip().split("\n\n")[0],
                deterministic=deterministic,
                output_node=output_node,
                identity=identity,
                check=check,
                reuse=reuse,
                embeds=tuple(embeds),
                module=fn.__module__,
                code=code_of(fn),
            )
        except ValueError as exc:  # the declaration's own problems, said with the signature's
            problems.insert(0, str(exc))
        if problems:
            target.refuse(ValueError("; ".join(problems)))
            return fn
        target.add(node_type)
        fn.node_type = node_type  # type: ignore[attr-defined]
        return fn

    return wrap


# What each list of a declaration holds, named as its problems name it.
_DECLARED_LISTS = {"inputs": (Input, "String(...), Int(...), Socket(...), ..."),
                   "outputs": (Output, "Output(name, TYPE), ...")}  # fmt: skip


def _list_problems(name: str, inputs: Any, outputs: Any) -> list[str]:
    """`inputs` and `outputs` are lists (or tuples) of declarations: one declaration given
    bare (`inputs=String("s", "a")`) was a TypeError naming no node type."""
    label, found = f"node type {name!r}", []
    for what, given in (("inputs", inputs), ("outputs", outputs)):
        kind, examples = _DECLARED_LISTS[what]
        if not isinstance(given, list | tuple):
            found.append(f"{label}: {what} must be a list ([{examples}]), not "
                         f"{_shown_item(given)}")  # fmt: skip
            continue
        found += [f"{label}: {what}[{n}] is {_shown_item(item)}, not "
                  f"{with_article(kind.__name__)} declaration ({examples})"
                  for n, item in enumerate(given) if not isinstance(item, kind)]  # fmt: skip
    return found


def _shown_item(item: Any) -> str:
    """What a declaration's list held instead, short: an input or output by its name."""
    if isinstance(item, Input | Output):
        return f"{with_article(type(item).__name__)} ({item.name!r})"
    return f"{type(item).__name__} {item!r}"


def _signature_problems(name: str, fn: Callable[..., Any], inputs: Sequence[Input]) -> list[str]:
    """How `fn` does not fit the engine's call `fn(ctx, **inputs)`: it must take the context
    first, then accept every declared input by name (or **kwargs); a parameter of its own
    without a default must be one the engine always passes (a declared input that is required
    or has a default). A callable without a signature is trusted."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    label = f"node type {name!r}"
    shown = f"{getattr(fn, '__qualname__', 'the function')}{signature}"
    params = list(signature.parameters.values())
    if not params or params[0].kind in (params[0].KEYWORD_ONLY, params[0].VAR_KEYWORD):
        return [f"{label}: its function {shown} must take the context as its first parameter, "
                "then the inputs by name"]  # fmt: skip
    context = params[0] if params[0].kind is not params[0].VAR_POSITIONAL else None
    by_name = {p.name: p for p in params[1:]
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}  # fmt: skip
    positional = {p.name for p in params[1:] if p.kind is p.POSITIONAL_ONLY}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    found = []
    for i in inputs:
        if i.name in by_name:
            continue
        if i.name in positional:
            found.append(f"{label} input {i.name!r}: its function {shown} takes {i.name!r} "
                         "positional-only; inputs are passed by name")  # fmt: skip
        elif context is not None and i.name == context.name:
            found.append(f"{label} input {i.name!r}: its function {shown} takes the context as "
                         f"{i.name!r}, its first parameter; the inputs come after the context "
                         f"(ctx, {i.name}, ...)")  # fmt: skip
        elif not takes_any:
            found.append(f"{label} input {i.name!r}: its function {shown} has no parameter "
                         f"{i.name!r} (nor **kwargs)")  # fmt: skip
    declared = {i.name: i for i in inputs}
    for p in params[1:]:
        if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        decl = declared.get(p.name)
        if decl is None:
            found.append(f"{label}: its function {shown} needs {p.name!r}, which is no declared "
                         "input: declare it, or give the parameter a default")  # fmt: skip
        elif decl.default is REQUIRED and decl.optional and p.kind is not p.POSITIONAL_ONLY:
            found.append(f"{label} input {p.name!r}: optional, so it may not be given, but its "
                         f"function {shown} has no default for it ({p.name}=None)")  # fmt: skip
    return found
