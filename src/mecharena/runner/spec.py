"""Experiment specs: mechanisms x populations x information policies x enforcement x seeds.

A spec is one YAML mapping; every combination of its lists becomes one
:class:`~mecharena.metrics.harness.Cell`::

    name: flagship                  # letters, digits, _ . - (default: the file name)
    description: free text          # optional
    markets: 2000                   # B per cell, in [1, 10_000_000] (default 1000)
    rounds: 30                      # T per cell, in [1, 1_000_000] (default 20)
    seeds: [0, 1, 2]                # root seeds, distinct, each >= 0 (default [0])
    values: uniform                 # value distribution (default uniform; power:shape=2, ...)
    channels: private,monitored     # message channels of every cell (default none; docs/talk.md)
    plugins: [rules/all_pay.py]     # plug-ins to load first: files (relative to the spec) or modules
    mechanisms:                     # at least one
      - id: second_price            # a mechanism id (`mecharena mechanisms`)
        config: {reserve_price: 0.2}  # its config fields (default: the mechanism's defaults)
        label: second price r=0.2   # optional; default id, or id(k=v,...) when configured
        populations: [truthful:6]   # optional: only these population labels (default: all)
    populations:                    # a list of specs (each its own label) or a mapping label: spec
      - truthful:6
      - bne:6
    information:                    # label: InformationPolicy fields (default {default: {}})
      sealed: {clearing_price: false}
      open: {clearing_price: true, winner_identity: true, competing_bids: true}
    enforcement:                    # label: Enforcement fields (default {none: {}})
      none: {}
      audited: {audit_probability: 0.2, collusion_penalty: 1.0}

Cells are ordered mechanisms, then populations, information, enforcement and seeds (the last
varies fastest); that order is the row order of the results. Everything is checked before any
work starts: the YAML, every key and value, every mechanism and agent id, every mechanism
config, and every combination (each cell's episode is built, and each distinct set of rules is
played for two rounds of one market, which catches agents that cannot play a mechanism).
Errors are :class:`SpecError` (a :class:`~mecharena.core.errors.ConfigError`) with one line per
problem: ``FILE:LINE: FIELD.PATH: what is wrong and what is allowed``.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, field_validator

from mecharena import agents, mechanisms, plugins
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.metrics.harness import Cell
from mecharena.runner.source import Lines, SpecError, parse_yaml
from mecharena.sim.channels import ChannelPolicy, parse_channels
from mecharena.sim.loop import MAX_MARKETS, MAX_ROUNDS, play

MAX_CELLS = 100_000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class MechanismEntry(StrictModel):
    """One mechanism of the spec (with its config)."""

    id: str = Field(min_length=1, description="a mechanism id (see `mecharena mechanisms`)")
    config: dict[str, Any] = Field(default_factory=dict, description="a mapping of the mechanism's config fields")
    label: str | None = Field(None, min_length=1, max_length=80, description="a name of 1 to 80 characters")
    populations: list[str] | None = Field(None, min_length=1,
                                          description="a non-empty list of population labels of this spec")

    @field_validator("config", mode="before")
    @classmethod
    def _null_config(cls, value: Any) -> Any:
        return {} if value is None else value


class ExperimentSpec(StrictModel):
    """A validated experiment: the factors whose product is the set of cells."""

    name: str = Field(min_length=1, max_length=80, pattern=NAME_PATTERN,
                      description="letters, digits, '_', '.' or '-', starting with a letter or digit")
    description: str = Field("", description="free text")
    markets: int = Field(1000, ge=1, le=MAX_MARKETS, description="independent markets B per cell")
    rounds: int = Field(20, ge=1, le=MAX_ROUNDS, description="rounds T per market")
    seeds: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0], min_length=1, description="a non-empty list of distinct integers >= 0")
    values: str = Field("uniform", description="a value distribution such as uniform or power:shape=2")
    channels: ChannelPolicy | None = Field(
        None, description="message channels of every cell: fields, or text such as 'private,monitored,delay=1'")
    plugins: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="a list of plug-in files (relative to the spec file) or module names")
    mechanisms: list[MechanismEntry] = Field(min_length=1, description="a non-empty list of {id, config, label}")
    populations: dict[Annotated[str, Field(min_length=1, max_length=200)], str] = Field(
        min_length=1, description="a non-empty list of population specs such as 'truthful:6', "
                                  "or a mapping label: spec")
    information: dict[Annotated[str, Field(min_length=1, max_length=80)], InformationPolicy] = Field(
        default_factory=lambda: {"default": InformationPolicy()}, min_length=1,
        description="a non-empty mapping label: information policy fields")
    enforcement: dict[Annotated[str, Field(min_length=1, max_length=80)], Enforcement] = Field(
        default_factory=lambda: {"none": Enforcement()}, min_length=1,
        description="a non-empty mapping label: enforcement fields")

    @field_validator("populations", mode="before")
    @classmethod
    def _list_of_specs(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        mapping: dict[Any, Any] = {}
        for item in value:
            if isinstance(item, str) and item in mapping:
                raise ValueError(f"population {item!r} is listed twice; list each population once")
            mapping[item if isinstance(item, str) else str(item)] = item
        return mapping

    @field_validator("information", "enforcement", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_text(cls, value: Any) -> Any:
        return parse_channels(value)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}")
        return value


@dataclass(frozen=True, slots=True)
class PlannedCell:
    """One cell of a spec with the labels it is reported under."""

    position: int  # row order in the results
    mechanism: str  # labels
    population: str
    information: str
    enforcement: str
    seed: int
    cell: Cell
    key: str  # cell.key()
    versions: dict[str, dict[str, int]]  # {"mechanism": {id: version}, "agents": {id: version}}


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated spec and every cell it expands to."""

    spec: ExperimentSpec
    source: str  # the YAML text ("" when built from Python)
    where: str  # the file it came from, for messages
    cells: tuple[PlannedCell, ...]


# --- structural validation ------------------------------------------------------------------

def _item_type(annotation: Any) -> Any:
    """The element type of list[X] / dict[K, X] / X | None / Annotated[X, ...]."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _item_type(get_args(annotation)[0])
    if origin in (list, tuple, set):
        return get_args(annotation)[0]
    if origin is dict:
        return get_args(annotation)[1]
    if origin in (Union, UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _item_type(options[0]) if len(options) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _owner(loc: tuple) -> tuple[type[BaseModel], str | None, int, bool]:
    """For an error location: the model owning it, the field, how deep that field is, and
    whether the last element is a key the model does not know."""
    model: type[BaseModel] = ExperimentSpec
    field_name: str | None = None
    depth = 0
    current: Any = ExperimentSpec
    for i, element in enumerate(loc):
        if _is_model(current):
            if element not in current.model_fields:
                return current, str(element), i, True
            model, field_name, depth = current, element, i + 1
            current = current.model_fields[element].annotation
            while get_origin(current) in (Union, UnionType):
                options = [a for a in get_args(current) if a is not type(None)]
                if len(options) != 1:
                    break
                current = options[0]
        else:
            current = _item_type(current)
    return model, field_name, depth, False


def _allowed(model: type[BaseModel], name: str) -> str:
    """What field ``name`` accepts: the range for numbers; for this module's other fields the
    description (written as what is allowed); for other models their own account."""
    info = model.model_fields[name]
    if model in (ExperimentSpec, MechanismEntry) and info.description and info.annotation is not int:
        return info.description
    return model.allowed(name) if issubclass(model, StrictModel) else "a valid value"


def _explain(error: dict) -> tuple[tuple, str]:
    """A pydantic error -> (path, message naming the bad value and what is allowed)."""
    loc = tuple(error["loc"])
    model, name, depth, unknown = _owner(loc)
    given = error.get("input")
    if unknown:
        allowed = ", ".join(model.model_fields)
        return loc, f"unknown key {name!r}; allowed keys: {allowed}"
    if name is None:
        return loc, f"the spec must be a mapping with keys {', '.join(ExperimentSpec.model_fields)}, got {given!r}"
    if error["type"] == "missing":
        return loc, f"{name} is required ({_allowed(model, name)})"
    if error["type"] == "value_error":
        return loc, str(error["msg"]).removeprefix("Value error, ")
    if depth == len(loc):
        return loc, f"{name} must be {_allowed(model, name)}, got {given!r}"
    return loc, f"{error['msg'][0].lower()}{error['msg'][1:]}, got {given!r} ({name}: {_allowed(model, name)})"


def build_spec(data: Any, lines: Lines | None = None, where: str = "<spec>", default_name: str = "experiment"
               ) -> ExperimentSpec:
    """Validate parsed YAML into an :class:`ExperimentSpec`.

    Raises:
        SpecError: every structural problem, each with its line.
    """
    lines = lines or Lines(1)
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        message = f"the spec must be a YAML mapping with keys {', '.join(ExperimentSpec.model_fields)}, got {kind}"
        raise SpecError(where, [(1, (), message)])
    data = dict(data)
    data.setdefault("name", default_name)
    populations = data.get("populations")
    node = lines.children.get("populations")
    if isinstance(populations, list) and node is not None:
        # A list entry is labelled by its own text; errors about that label point at the entry.
        for i, item in enumerate(populations):
            if i in node.children:
                node.children.setdefault(item if isinstance(item, str) else str(item), node.children[i])
    try:
        return ExperimentSpec(**data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            path, message = _explain(error)
            issues.append((lines.line_of(path), path, message))
        raise SpecError(where, issues) from None


# --- expansion and semantic validation ------------------------------------------------------

def _config_path(index: int, config: dict[str, Any], message: str) -> tuple:
    for key in config:
        if message.startswith(f"{key} ") or f"{key!r}" in message:
            return ("mechanisms", index, "config", key)
    return ("mechanisms", index, "config")


def _default_label(entry: MechanismEntry) -> str:
    if entry.label:
        return entry.label
    if not entry.config:
        return entry.id
    return f"{entry.id}({','.join(f'{k}={json.dumps(v)}' for k, v in entry.config.items())})"


def _probe(cell: Cell) -> None:
    """Play two rounds of one market: agents that cannot play these rules fail here, not mid-run."""
    probe = cell.model_copy(update={"markets": 1, "rounds": min(cell.rounds, 2)})
    for _ in play(probe.episode(), probe.rounds):
        pass


def plan_cells(spec: ExperimentSpec, lines: Lines | None = None, where: str = "<spec>", source: str = "",
               base_dir: str | Path | None = None) -> Plan:
    """Load the spec's plug-ins, expand ``spec`` into cells and check every one before any work starts.

    Args:
        spec: a validated spec.
        lines: field lines from :func:`~mecharena.runner.source.parse_yaml` (for messages).
        where: the spec's file name (for messages).
        source: the YAML text (stored with the results).
        base_dir: the directory relative plug-in paths start from (default: the working directory).

    Returns:
        The :class:`Plan`: cells in the order mechanisms x populations x information x
        enforcement x seeds.

    Raises:
        SpecError: unknown ids, bad configs or populations, combinations that cannot be played;
            one line per problem, each with the line of the field responsible.
    """
    lines = lines or Lines(1)
    issues: list[tuple[int, tuple, str]] = []

    def report(path: tuple, message: str) -> None:
        issues.append((lines.line_of(path), path, message))

    for i, plugin in enumerate(spec.plugins):
        try:
            plugins.load(plugin, base=base_dir)
        except MechArenaError as exc:
            report(("plugins", i), str(exc))
    if issues:  # unknown ids would only repeat that a plug-in is missing
        raise SpecError(where, issues)

    try:
        agents.parse_distribution(spec.values)
    except MechArenaError as exc:
        report(("values",), str(exc))

    populations: dict[str, str] = {}
    for label, text in spec.populations.items():
        try:
            populations[label] = agents.population(text).spec
        except MechArenaError as exc:
            report(("populations", label), str(exc))

    entries: list[tuple[int, MechanismEntry, str, list[str]]] = []
    seen_labels: dict[str, int] = {}
    for i, entry in enumerate(spec.mechanisms):
        ok = True
        try:
            mechanisms.get(entry.id).config(entry.config)
        except MechArenaError as exc:
            ok = False
            report(("mechanisms", i, "id") if not isinstance(exc, ConfigError) else
                   _config_path(i, entry.config, str(exc)), str(exc))
        label = _default_label(entry)
        if label in seen_labels:
            ok = False
            report(("mechanisms", i, "label") if entry.label else ("mechanisms", i, "id"),
                   f"mechanism label {label!r} is already used by mechanisms[{seen_labels[label]}]; "
                   f"give each entry a distinct label")
        seen_labels.setdefault(label, i)
        chosen = list(spec.populations)
        if entry.populations is not None:
            for j, name in enumerate(entry.populations):
                if name not in spec.populations:
                    ok = False
                    report(("mechanisms", i, "populations", j),
                           f"unknown population label {name!r}; allowed: {', '.join(spec.populations)}")
            chosen = [name for name in spec.populations if name in entry.populations]
        if ok:
            entries.append((i, entry, label, chosen))

    total = sum(len(chosen) for *_, chosen in entries) * len(spec.information) * len(spec.enforcement) \
        * len(spec.seeds)
    if total > MAX_CELLS:
        report((), f"the spec expands to {total} cells; at most {MAX_CELLS} are allowed")
    if issues:
        raise SpecError(where, issues)

    cells: list[PlannedCell] = []
    for i, entry, label, chosen in entries:
        for population in chosen:
            if population not in populations:
                continue  # already reported
            failed = False
            for info_label, information in spec.information.items():
                for enf_label, enforcement in spec.enforcement.items():
                    for s, seed in enumerate(spec.seeds):
                        if failed:  # one message per mechanism and population is enough
                            break
                        cell = Cell(mechanism=entry.id, config=entry.config, population=spec.populations[population],
                                    information=information, enforcement=enforcement, values=spec.values,
                                    markets=spec.markets, rounds=spec.rounds, seed=seed, channels=spec.channels)
                        try:
                            episode = cell.episode()
                            if s == 0:
                                _probe(cell)
                        except MechArenaError as exc:
                            rules = f"information {info_label!r}, enforcement {enf_label!r}"
                            report(("mechanisms", i),
                                   f"{label} cannot run with population {population!r} (line "
                                   f"{lines.line_of(('populations', population))}) under {rules}: {exc}; "
                                   f"list the populations it can run with under `populations:` in its entry")
                            failed = True
                            break
                        versions = {"mechanism": {entry.id: episode.context.mechanism.version},
                                    "agents": dict(episode.population.versions)}
                        cells.append(PlannedCell(len(cells), label, population, info_label, enf_label, seed, cell,
                                                 cell.key(), versions))
    if issues:
        raise SpecError(where, issues)
    return Plan(spec, source, where, tuple(cells))


def parse_spec(text: str, where: str = "<spec>", default_name: str = "experiment",
               base_dir: str | Path | None = None) -> Plan:
    """YAML text -> a checked :class:`Plan` (see the module docstring for the format); relative
    plug-in paths start from ``base_dir`` (default: the working directory).

    Raises:
        SpecError: malformed YAML, unknown keys or ids, bad values, unplayable combinations, or a
            plug-in that cannot be loaded.
    """
    data, lines = parse_yaml(text, where)
    spec = build_spec(data, lines, where, default_name)
    return plan_cells(spec, lines, where, text, base_dir)


def load_spec(path: str | Path) -> Plan:
    """Read and check a spec file; the default name is the file's stem and plug-in paths are
    relative to the file.

    Raises:
        SpecError: the file is missing or unreadable, or the spec is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), [(0, (), "spec file does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), [(0, (), f"cannot read the spec file: {exc}")]) from None
    stem = "".join(c if c.isalnum() or c in "_.-" else "_" for c in path.stem).lstrip("_.-") or "experiment"
    return parse_spec(text, str(path), stem, path.parent)
