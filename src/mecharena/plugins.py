"""Plug-ins: a user's mechanisms and agent types, registered beside the built-in ones.

**Contract.** A plug-in is a Python file (``rules/all_pay.py``) or an importable module
(``my_package.all_pay``) that defines any of

* ``MECHANISM`` or ``MECHANISMS``: a :class:`mecharena.mechanisms.Mechanism`, or a list of them;
* ``AGENT`` or ``AGENTS``: a :class:`mecharena.agents.AgentType`, or a list of them;
* ``FAMILY`` or ``FAMILIES``: a :class:`mecharena.fuzz.families.Family` (a deviation family the
  fuzzer searches: an agent type and a box of its parameters), or a list of them.

:func:`load` imports it, validates every record (field types; an id of letters, digits and ``_``
starting with a letter; ``version >= 1``; a non-empty ``summary``; at least one example config)
and runs the :mod:`~mecharena.mechanisms.checker` battery on every mechanism, then registers
them in :data:`mecharena.mechanisms.REGISTRY`, :data:`mecharena.agents.REGISTRY` and
:data:`mecharena.fuzz.families.FAMILIES`. From then on
every command takes the plug-in's ids like built-in ones. Loading a plug-in again does nothing;
an id already held by a different entry is refused with both sources named. Nothing of a
plug-in is registered unless all of it is valid. A file is imported on its own (not as part of
a package): split a larger plug-in into a package and load it as a module.

**Where plug-ins come from** (:func:`activate`, called when the ``mecharena`` command starts):

* installed distributions with an entry point in the group ``mecharena.plugins`` whose value is
  a module (``all_pay = "my_package.all_pay"`` under ``[project.entry-points."mecharena.plugins"]``);
* the ``MECHARENA_PLUGINS`` environment variable: paths or module names separated by
  ``os.pathsep``;
* ``mecharena --plugin PATH_OR_MODULE COMMAND ...`` (repeatable);
* ``plugins: [file.py, ...]`` in an experiment spec (paths relative to the spec file).

The runner hands :func:`sources` (every plug-in loaded in this process) to its workers, which
load them before computing a cell, so a process pool or a Ray cluster runs the same rules.
"""

import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mecharena import agents, mechanisms
from mecharena.agents.base import AgentType
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.fuzz.families import FAMILIES, Family, Param
from mecharena.mechanisms.base import Mechanism, MechanismConfig
from mecharena.mechanisms.checker import CHECKS, run_checks

ENV_VAR = "MECHARENA_PLUGINS"
ENTRY_POINT_GROUP = "mecharena.plugins"
ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
ID_RULE = "letters, digits and '_', starting with a letter"


class PluginError(ConfigError):
    """A plug-in cannot be imported, defines invalid records, fails the checker or clashes with a registered id."""


@dataclass(frozen=True, slots=True)
class Plugin:
    """A loaded plug-in and what it registered."""

    source: str  # an absolute file path, or a module name
    module: str  # the module's name in sys.modules
    mechanisms: tuple[Mechanism, ...]
    agents: tuple[AgentType, ...]
    families: tuple[Family, ...] = ()


# --- validation of the records ---------------------------------------------------------------

_Callable = Callable[..., Any]


class _RecordFields(BaseModel):
    """Fields every record shares. Each description says what the field allows."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(pattern=ID_PATTERN, max_length=64, description=f"an id of 1 to 64 {ID_RULE}")
    version: int = Field(ge=1, strict=True, description="an integer >= 1")
    summary: str = Field(min_length=1, strict=True, description="a non-empty string")


class _MechanismFields(_RecordFields):
    config_model: type[MechanismConfig] = Field(description="a subclass of mecharena.mechanisms.base.MechanismConfig")
    kernel: _Callable = Field(description="a function (config, values, bids, priority, times) -> Outcome")
    reference: _Callable = Field(description="a function (config, values, bids, priority, times) -> dict for one market")
    properties: _Callable = Field(description="a function config -> frozenset of property names")
    market_spec: _Callable = Field(description="a function (config, n_agents) -> MarketSpec")
    truthful: _Callable = Field(description="a function (config, values, spec) -> bids")
    uses_times: bool = Field(strict=True, description="a bool")
    merges_identities: bool = Field(strict=True, description="a bool")
    additive_values: bool = Field(strict=True, description="a bool")
    examples: tuple[dict[str, Any], ...] = Field(min_length=1, description="a non-empty tuple of config dicts")
    doc: str = Field(strict=True, description="a string")


class _AgentFields(_RecordFields):
    act: _Callable = Field(description="a function (context, params, state, values, draws) -> Action or bids")
    init: _Callable = Field(description="a function (context, params, seats, draws) -> state")
    update: _Callable = Field(description="a function (context, params, state, values, action, observation, "
                                          "feedback, draws) -> state")
    params_model: type[StrictModel] = Field(description="a subclass of mecharena.core.config.StrictModel")
    identities: _Callable = Field(description="a function params -> number of seats one agent takes")


class _FamilyFields(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(pattern=ID_PATTERN, max_length=64, description=f"an id of 1 to 64 {ID_RULE}")
    agent: str = Field(pattern=ID_PATTERN, description="the id of the agent type it deviates to")
    params: tuple[Param, ...] = Field(description="a tuple of mecharena.fuzz.families.Param")
    summary: str = Field(min_length=1, strict=True, description="a non-empty string")
    mitigation: str = Field(min_length=1, strict=True, description="a non-empty string")
    coalition: bool = Field(strict=True, description="a bool")
    sides: str = Field(pattern="^(any|one|two)$", description="'any', 'one' or 'two'")
    fixed: dict[str, Any] = Field(description="a dict of fixed agent parameters")
    starts: tuple[dict[str, Any], ...] = Field(description="a tuple of parameter dicts")
    opt_in: bool = Field(strict=True, description="a bool")


_KINDS: dict[str, tuple[type, type[BaseModel], str]] = {
    "MECHANISM": (Mechanism, _MechanismFields, "mecharena.mechanisms.Mechanism"),
    "MECHANISMS": (Mechanism, _MechanismFields, "mecharena.mechanisms.Mechanism"),
    "AGENT": (AgentType, _AgentFields, "mecharena.agents.AgentType"),
    "AGENTS": (AgentType, _AgentFields, "mecharena.agents.AgentType"),
    "FAMILY": (Family, _FamilyFields, "mecharena.fuzz.families.Family"),
    "FAMILIES": (Family, _FamilyFields, "mecharena.fuzz.families.Family"),
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _validate(record: Any, where: str, fields: type[BaseModel]) -> list[str]:
    """Problems with ``record``'s fields, one line each (empty: valid)."""
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    label = f"{where} ({values['name']!r})" if isinstance(values.get("name"), str) else where
    try:
        fields.model_validate(values)
    except ValidationError as exc:
        return [f"{label}: {error['loc'][0]} must be {fields.model_fields[str(error['loc'][0])].description}, "
                f"got {_short(error['input'])}" for error in exc.errors()]
    return []


def _records(module: ModuleType) -> tuple[list[tuple[str, Any]], list[str]]:
    """Every (where, record) the module defines, and the problems found."""
    found: list[tuple[str, Any]] = []
    problems: list[str] = []
    for attribute, (kind, fields, type_name) in _KINDS.items():
        if not hasattr(module, attribute):
            continue
        value = getattr(module, attribute)
        many = isinstance(value, list | tuple)
        for i, record in enumerate(value if many else [value]):
            where = f"{attribute}[{i}]" if many else attribute
            if not isinstance(record, kind):
                problems.append(f"{where} must be a {type_name}{' (or a list of them)' if not many else ''}, "
                                f"got {type(record).__name__}")
                continue
            problems += _validate(record, where, fields)
            found.append((where, record))
    if not found and not problems:
        problems.append(f"defines none of {', '.join(_KINDS)}; define at least one (see mecharena.plugins)")
    return found, problems


def _check(record: Mechanism) -> list[str]:
    """Every check of the battery that the mechanism fails: which, its rule, and the first failure."""
    return [f"mechanism {record.name!r} failed check_mechanism on {failure.check!r} ({CHECKS[failure.check]}): "
            f"{failure}" for failure in run_checks(record).failures]


# --- importing -------------------------------------------------------------------------------

_LOADED: dict[str, Plugin] = {}  # source -> plug-in, in load order


def _is_file(source: str) -> bool:
    """A path to a file rather than a module name."""
    return source.endswith(".py") or "/" in source or os.sep in source or Path(source).is_file()


def _import(source: str) -> ModuleType:
    """The module of a module name, or of an absolute path to a Python file."""
    if not _is_file(source):
        try:
            return importlib.import_module(source)
        except ModuleNotFoundError as exc:
            if exc.name is not None and source.startswith(exc.name):
                raise PluginError(f"plugin {source}: no module named {exc.name!r}; give a path to a .py file or "
                                  "a module importable from sys.path") from None
            raise PluginError(f"plugin {source}: importing it raised {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # a plug-in may raise anything while it is imported
            raise PluginError(f"plugin {source}: importing it raised {type(exc).__name__}: {exc}") from exc
    path = Path(source)
    if not path.is_file():
        raise PluginError(f"plugin {source}: file does not exist")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"mecharena_plugin_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {source}: cannot be imported as a Python file; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickle and numba's cache look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a plug-in may raise anything while it is imported
        del sys.modules[name]
        raise PluginError(f"plugin {path}: importing it raised {type(exc).__name__}: {exc}") from exc
    return module


def load(source: str, *, check: bool = True, base: str | Path | None = None) -> Plugin:
    """Import, validate and register the plug-in at ``source`` (a .py path or a module name).

    Args:
        source: a path to a Python file or a module name.
        check: run the checker's battery on its mechanisms (workers
            loading a plug-in their parent already checked skip it).
        base: the directory a relative file path is relative to (default: the working directory).

    Returns:
        The :class:`Plugin`; the same object when it was loaded before.

    Raises:
        PluginError: the source cannot be imported, defines no or invalid records, a mechanism
            fails the checker (one line per failed check, naming it), or an id is taken by another entry.
    """
    if not isinstance(source, str) or not source.strip():
        raise PluginError(f"a plugin must be a path to a .py file or a module name, got {source!r}")
    if _is_file(source):
        source = str(Path(base or ".", Path(source).expanduser()).resolve())
    if source in _LOADED:
        return _LOADED[source]
    module = _import(source)
    found, problems = _records(module)
    if not problems and check:
        problems = [line for _, record in found if isinstance(record, Mechanism) for line in _check(record)]
    plugin = Plugin(source, module.__name__, *(tuple(r for _, r in found if isinstance(r, kind))
                                               for kind in (Mechanism, AgentType, Family)))
    pairs = [(registry, record) for registry, records in ((mechanisms.REGISTRY, plugin.mechanisms),
                                                          (agents.REGISTRY, plugin.agents), (FAMILIES, plugin.families))
             for record in records]
    if not problems:
        problems = [message for registry, record in pairs
                    if (message := registry.conflict(record.name, record, source))]
    if problems:
        raise PluginError(f"plugin {source}: " + f"\nplugin {source}: ".join(problems))
    for registry, record in pairs:
        registry.register(record.name, record, source)
    _LOADED[source] = plugin
    return plugin


def load_all(sources: Iterable[str], *, check: bool = True) -> list[Plugin]:
    """:func:`load` each source in order (relative paths: from the working directory)."""
    return [load(source, check=check) for source in sources]


def load_entry_points() -> list[Plugin]:
    """Load every plug-in module declared in the entry point group ``mecharena.plugins``.

    Raises:
        PluginError: an entry point names ``module:attribute`` instead of a module, or its plug-in is invalid.
    """
    loaded = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.attr is not None:
            raise PluginError(f"entry point {entry.name!r} in group {ENTRY_POINT_GROUP} must name a module, "
                              f"got {entry.value!r}")
        loaded.append(load(entry.module))
    return loaded


def from_environment() -> list[str]:
    """The plug-ins named in ``MECHARENA_PLUGINS`` (``os.pathsep``-separated; blanks skipped)."""
    return [item.strip() for item in os.environ.get(ENV_VAR, "").split(os.pathsep) if item.strip()]


def activate(sources: Iterable[str] = ()) -> list[Plugin]:
    """Load the entry-point plug-ins, then those in ``MECHARENA_PLUGINS``, then ``sources``."""
    return load_entry_points() + load_all([*from_environment(), *sources])


def sources() -> tuple[str, ...]:
    """Every plug-in loaded in this process, in load order, as :func:`load` takes them (for workers)."""
    return tuple(_LOADED)


__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "Plugin", "PluginError", "activate", "from_environment", "load",
           "load_all", "load_entry_points", "sources"]
