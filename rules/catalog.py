"""The rule catalog: YAML files read strictly into typed rules, or refused with file, line and fix.

A rule is data, never code: YAML is read with the safe loader (no tags, no objects), and a
condition is `feature operator literal`, matched by a regular expression against the feature
registry. Refusing a broken file never takes the service down: `LiveCatalog` keeps the last
catalog that loaded and reports why the new one was refused.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.errors import AppError
from consent.scopes import Scope, Wording
from rules.features import FEATURES, FORBIDDEN_INPUTS, Feature, Kind, ValueType
from rules.models import Category

log = logging.getLogger("tsunagu.rules")

CATALOG_DIR = Path(__file__).parent / "catalog"


class Op(StrEnum):
    ge = ">="
    gt = ">"
    le = "<="
    lt = "<"
    eq = "=="
    ne = "!="


class RuleStatus(StrEnum):
    live = "live"  # reaches staff as alerts
    trial = "trial"  # evaluated and backtested, shown to no one until an administrator promotes it


# --- the file format (structure only; meaning is checked afterwards, with line numbers) -------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    ja: str = Field(min_length=1)
    en: str = Field(min_length=1)


class AllOf(_Strict):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Strict):
    any: list[Condition] = Field(min_length=1)


class AtLeast(_Strict):
    at_least: int = Field(ge=1)
    of: list[Condition] = Field(min_length=2)


Condition = Annotated[str | AllOf | AnyOf | AtLeast, Field(union_mode="left_to_right")]


class BoosterSpec(_Strict):
    atom: str
    weight: float = Field(gt=0, le=5)


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{2,63}$")
    status: RuleStatus = RuleStatus.live
    title: Text
    description: Text
    reference: str | None = None
    scopes: list[Scope] = Field(min_length=1)
    weight: float = Field(gt=0, le=10)
    atoms: dict[str, str] = Field(min_length=1)
    when: Condition
    adds: list[BoosterSpec] = Field(default_factory=list)


class CatalogFileSpec(_Strict):
    category: Category
    rules: list[RuleSpec] = Field(min_length=1)


# --- the checked catalog -------------------------------------------------------------------


@dataclass(frozen=True)
class Atom:
    name: str
    feature: Feature
    op: Op
    threshold: float | bool

    @property
    def text(self) -> str:
        literal = str(self.threshold).lower() if isinstance(self.threshold, bool) else self.threshold
        return f"{self.feature.name} {self.op.value} {literal}"


@dataclass(frozen=True)
class All:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Any_:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class AtLeastN:
    n: int
    parts: tuple[Node, ...]


Node = Atom | All | Any_ | AtLeastN


@dataclass(frozen=True)
class Booster:
    atom: Atom
    weight: float


@dataclass(frozen=True)
class Rule:
    id: str
    version: str
    category: Category
    status: RuleStatus
    title: Wording
    description: Wording
    reference: str | None
    scopes: frozenset[Scope]
    weight: float
    atoms: tuple[Atom, ...]
    when: Node
    boosters: tuple[Booster, ...]
    source: str  # the file it came from

    @property
    def required_scopes(self) -> frozenset[Scope]:
        """What the family must have shared for the rule to run; boosters' scopes are optional:
        without them the rule runs and the fact simply adds nothing."""
        return frozenset(a.feature.scope for a in self.atoms if a.feature.scope is not None)

    @property
    def features(self) -> frozenset[str]:
        return frozenset(a.feature.name for a in self.atoms) | frozenset(
            b.atom.feature.name for b in self.boosters
        )


@dataclass(frozen=True)
class Catalog:
    rules: tuple[Rule, ...]
    version: str
    files: tuple[str, ...] = field(default=())

    def features(self) -> frozenset[str]:
        return frozenset().union(*(rule.features for rule in self.rules))

    def rule(self, rule_id: str) -> Rule:
        return next(rule for rule in self.rules if rule.id == rule_id)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message} — 直し方 / fix: {self.fix}"


class CatalogError(AppError):
    """The catalog was refused; every problem names its file, line and fix."""

    status_code = 422
    code = "catalog_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# --- loading ---------------------------------------------------------------------------------

_ATOM = re.compile(r"^\s*(?P<feature>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>[<>=!]+)\s*(?P<literal>\S+)\s*$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_OPS = ", ".join(op.value for op in Op)


class _Lines:
    """Maps a path inside the YAML document (keys and list indexes) to its line number."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def at(self, path: tuple[str | int, ...]) -> int:
        node = self.root
        line = 1 if node is None else node.start_mark.line + 1
        for step in path:
            if isinstance(node, yaml.MappingNode):
                match = next((v for k, v in node.value if k.value == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                match = node.value[step] if step < len(node.value) else None
            else:
                match = None
            if match is None:
                break
            node = match
            line = node.start_mark.line + 1
        return line


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else "see the feature list on /transparency"


class _FileChecker:
    def __init__(self, name: str, lines: _Lines) -> None:
        self.name = name
        self.lines = lines
        self.problems: list[Problem] = []

    def problem(self, path: tuple[str | int, ...], message: str, fix: str) -> None:
        self.problems.append(Problem(self.name, self.lines.at(path), message, fix))

    def atom(self, name: str, text: str, path: tuple[str | int, ...]) -> Atom | None:
        match = _ATOM.match(text)
        if match is None:
            self.problem(
                path,
                f"condition {text!r} is not 'feature operator value'",
                "write e.g. 'absence_rate_30d >= 0.10'; a rule cannot contain code",
            )
            return None
        feature_name, op_text, literal = match["feature"], match["op"], match["literal"]
        if feature_name.lower() in FORBIDDEN_INPUTS:
            self.problem(
                path,
                f"'{feature_name}' is never a rule input (DOMAIN.md: Wisconsin DEWS)",
                "remove the condition; sex and nationality are used only to measure the backtest per group",
            )
            return None
        feature = FEATURES.get(feature_name)
        if feature is None:
            self.problem(
                path,
                f"unknown feature '{feature_name}'",
                _suggest(feature_name, list(FEATURES)),
            )
            return None
        try:
            op = Op(op_text)
        except ValueError:
            self.problem(path, f"unknown operator '{op_text}'", f"use one of {_OPS}")
            return None
        threshold: float | bool
        if feature.value_type is ValueType.flag:
            if literal not in ("true", "false") or op not in (Op.eq, Op.ne):
                self.problem(
                    path,
                    f"'{feature_name}' is yes/no",
                    f"write '{feature_name} == true' or '{feature_name} == false'",
                )
                return None
            threshold = literal == "true"
        else:
            if not _NUMBER.match(literal):
                self.problem(
                    path,
                    f"'{literal}' is not a number",
                    "write a plain number such as 3 or 0.10 (no units, no %)",
                )
                return None
            threshold = float(literal)
            if feature.value_type is ValueType.rate and not 0 <= threshold <= 1:
                self.problem(
                    path,
                    f"'{feature_name}' is a rate between 0 and 1",
                    f"write {threshold / 100:.2f} for {literal} %",
                )
                return None
            if feature.value_type is ValueType.tally and threshold < 0:
                self.problem(path, f"'{feature_name}' counts from 0", "use a threshold ≥ 0")
                return None
        return Atom(name=name, feature=feature, op=op, threshold=threshold)

    def node(self, condition: Condition, atoms: dict[str, Atom], path: tuple[str | int, ...]) -> Node | None:
        if isinstance(condition, str):
            if condition not in atoms:
                self.problem(
                    path,
                    f"'{condition}' is not one of this rule's atoms",
                    f"name one of {sorted(atoms)} or add it under 'atoms'",
                )
                return None
            return atoms[condition]
        if isinstance(condition, AllOf):
            parts = [self.node(c, atoms, (*path, "all", i)) for i, c in enumerate(condition.all)]
            return None if None in parts else All(tuple(p for p in parts if p is not None))
        if isinstance(condition, AnyOf):
            parts = [self.node(c, atoms, (*path, "any", i)) for i, c in enumerate(condition.any)]
            return None if None in parts else Any_(tuple(p for p in parts if p is not None))
        if condition.at_least > len(condition.of):
            self.problem(
                path,
                f"at_least {condition.at_least} of {len(condition.of)} conditions can never hold",
                f"lower at_least to at most {len(condition.of)}",
            )
            return None
        parts = [self.node(c, atoms, (*path, "of", i)) for i, c in enumerate(condition.of)]
        if None in parts:
            return None
        return AtLeastN(condition.at_least, tuple(p for p in parts if p is not None))

    def rule(self, spec: RuleSpec, category: Category, index: int) -> Rule | None:
        base: tuple[str | int, ...] = ("rules", index)
        before = len(self.problems)
        atoms: dict[str, Atom] = {}
        for name, text in spec.atoms.items():
            atom = self.atom(name, text, (*base, "atoms", name))
            if atom is None:
                continue
            if atom.feature.kind is Kind.status:
                self.problem(
                    (*base, "atoms", name),
                    f"'{atom.feature.name}' is a status fact (benefit or household): it may "
                    "add weight but never fire a rule",
                    "move it under 'adds' with a weight",
                )
                continue
            atoms[name] = atom
        used = _atom_names(spec.when)
        for name in sorted(set(spec.atoms) - used):
            self.problem(
                (*base, "atoms", name),
                f"atom '{name}' is not used in 'when'",
                "use it in 'when' or delete it",
            )
        when = self.node(spec.when, atoms, (*base, "when")) if atoms else None
        boosters: list[Booster] = []
        for i, booster in enumerate(spec.adds):
            atom = self.atom(f"adds[{i}]", booster.atom, (*base, "adds", i, "atom"))
            if atom is not None:
                boosters.append(Booster(atom, booster.weight))
        if when is not None and _fires_on_staff_records_alone(when):
            self.problem(
                (*base, "when"),
                "staff observations alone could fire this rule; they count beside the data, "
                "not instead of it",
                "put each observation count in 'at_least N' with N above the number of observation "
                "atoms, or under 'adds'",
            )
        needed = {
            scope
            for scope in [a.feature.scope for a in atoms.values()] + [b.atom.feature.scope for b in boosters]
            if scope is not None
        }
        if len(self.problems) == before and needed != set(spec.scopes):
            self.problem(
                (*base, "scopes"),
                "scopes do not match the features the rule uses",
                f"set scopes to [{', '.join(sorted(s.value for s in needed))}]",
            )
        if len(self.problems) > before or when is None:
            return None
        canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return Rule(
            id=spec.id,
            version=hashlib.sha256(f"{category}:{canonical}".encode()).hexdigest()[:12],
            category=category,
            status=spec.status,
            title=Wording(spec.title.ja, spec.title.en),
            description=Wording(spec.description.ja, spec.description.en),
            reference=spec.reference,
            scopes=frozenset(spec.scopes),
            weight=spec.weight,
            atoms=tuple(atoms.values()),
            when=when,
            boosters=tuple(boosters),
            source=self.name,
        )


def _fires_on_staff_records_alone(node: Node) -> bool:
    """Whether the rule holds with every staff-record atom true and every data atom false."""
    if isinstance(node, Atom):
        return node.feature.scope is None
    held = sum(_fires_on_staff_records_alone(part) for part in node.parts)
    if isinstance(node, All):
        return held == len(node.parts)
    if isinstance(node, Any_):
        return held >= 1
    return held >= node.n


def _atom_names(condition: Condition) -> set[str]:
    if isinstance(condition, str):
        return {condition}
    parts = (
        condition.all
        if isinstance(condition, AllOf)
        else condition.any
        if isinstance(condition, AnyOf)
        else condition.of
    )
    return set().union(*(_atom_names(c) for c in parts))


def _load_file(name: str, text: str) -> tuple[list[Rule], list[Problem]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        return [], [
            Problem(
                name,
                line,
                f"YAML tag not allowed ({exc.problem})",
                "a rule cannot run code: remove the '!!' tag and write plain values",
            )
        ]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [], [
            Problem(
                name,
                mark.line + 1 if mark else 1,
                f"not valid YAML ({getattr(exc, 'problem', exc)})",
                "check the indentation and quoting around this line",
            )
        ]
    lines = _Lines(root)
    try:
        spec = CatalogFileSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = tuple(step for step in error["loc"] if not (isinstance(step, str) and "[" in step))
            where = ".".join(str(step) for step in path) or "(top)"
            if error["type"] == "extra_forbidden":
                fix = f"remove '{path[-1]}'; allowed keys are in rules/catalog/README.md"
            elif error["type"] == "missing":
                fix = f"add '{path[-1]}'"
            elif error["type"] == "enum":
                fix = f"use one of: {error.get('ctx', {}).get('expected', '')}"
            else:
                fix = "see rules/catalog/README.md"
            problems.append(Problem(name, lines.at(path), f"{where}: {error['msg']}", fix))
        return [], _dedupe(problems)
    checker = _FileChecker(name, lines)
    rules = [checker.rule(rule, spec.category, i) for i, rule in enumerate(spec.rules)]
    return [r for r in rules if r is not None], checker.problems


def _dedupe(problems: list[Problem]) -> list[Problem]:
    # A union of condition shapes reports one error per shape; the line and first message do.
    seen: set[int] = set()
    kept = []
    for problem in problems:
        if problem.line not in seen:
            seen.add(problem.line)
            kept.append(problem)
    return kept


def load_catalog(directory: Path = CATALOG_DIR) -> Catalog:
    """Read every `*.yaml` in the directory; raise CatalogError listing all problems."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogError([Problem(str(directory), 0, "no *.yaml rule files", "add one")])
    digest = hashlib.sha256()
    rules: list[Rule] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        file_rules, file_problems = _load_file(path.name, text)
        problems += file_problems
        for rule in file_rules:
            if rule.id in seen:
                problems.append(
                    Problem(
                        path.name,
                        _Lines(yaml.compose(text, Loader=yaml.SafeLoader)).at(("rules",)),
                        f"rule id '{rule.id}' is also defined in {seen[rule.id]}",
                        "give each rule its own id",
                    )
                )
            seen[rule.id] = path.name
            rules.append(rule)
    if problems:
        raise CatalogError(problems)
    return Catalog(
        rules=tuple(rules),
        version=digest.hexdigest()[:12],
        files=tuple(path.name for path in files),
    )


@dataclass
class LiveCatalog:
    """The catalog in force: reloaded when the files change, kept as it was when they break."""

    directory: Path = CATALOG_DIR
    catalog: Catalog | None = None
    last_error: CatalogError | None = None
    _fingerprint: tuple[tuple[str, float, int], ...] = ()

    def get(self) -> Catalog:
        fingerprint = tuple(
            (p.name, p.stat().st_mtime, p.stat().st_size) for p in sorted(self.directory.glob("*.yaml"))
        )
        if fingerprint != self._fingerprint or self.catalog is None:
            self._fingerprint = fingerprint
            try:
                self.catalog = load_catalog(self.directory)
                self.last_error = None
            except CatalogError as exc:
                self.last_error = exc
                if self.catalog is None:
                    raise
                log.error(
                    "rule catalog refused; the last good catalog stays in force",
                    extra={"fields": {"version": self.catalog.version, "problems": exc.message}},
                )
        return self.catalog


live_catalog = LiveCatalog()
