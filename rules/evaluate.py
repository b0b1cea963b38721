"""Rules over feature columns, in three-valued logic, for every child at once (numpy).

A rule's outcome for a child is one of: fired, not fired, insufficient data (the answer hangs
on a feature that is unknown for the child), or not consented (the family did not grant a scope
the rule reads, so the rule is skipped for that child).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from consent.scopes import Scope
from rules.catalog import All, Any_, AtLeastN, Atom, Node, Op, Rule
from rules.compute import FeatureTable

Mask = NDArray[np.bool_]


class Outcome(StrEnum):
    fired = "fired"
    not_fired = "not_fired"
    insufficient_data = "insufficient_data"
    not_consented = "not_consented"


@dataclass(frozen=True)
class Truth:
    """Two masks: where the condition is known true and where it is known false."""

    true: Mask
    false: Mask

    @property
    def unknown(self) -> Mask:
        return ~(self.true | self.false)


_COMPARE = {
    Op.ge: np.greater_equal,
    Op.gt: np.greater,
    Op.le: np.less_equal,
    Op.lt: np.less,
    Op.eq: np.equal,
    Op.ne: np.not_equal,
}


def atom_truth(atom: Atom, values: NDArray[np.float64]) -> Truth:
    known = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        holds = _COMPARE[atom.op](values, float(atom.threshold))
    return Truth(true=known & holds, false=known & ~holds)


def node_truth(node: Node, table: FeatureTable) -> Truth:
    if isinstance(node, Atom):
        return atom_truth(node, table.values[node.feature.name])
    parts = [node_truth(part, table) for part in node.parts]
    trues = np.sum([p.true for p in parts], axis=0)
    unknowns = np.sum([p.unknown for p in parts], axis=0)
    if isinstance(node, All):
        need = len(parts)
    elif isinstance(node, Any_):
        need = 1
    else:
        assert isinstance(node, AtLeastN)
        need = node.n
    return Truth(true=trues >= need, false=trues + unknowns < need)


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    fired: Mask
    insufficient: Mask
    not_consented: Mask

    def outcome(self, index: int) -> Outcome:
        if self.not_consented[index]:
            return Outcome.not_consented
        if self.fired[index]:
            return Outcome.fired
        if self.insufficient[index]:
            return Outcome.insufficient_data
        return Outcome.not_fired


def consent_masks(
    table: FeatureTable, allowed: Mapping[int, Mapping[Scope, int]], scopes: set[Scope]
) -> dict[Scope, Mask]:
    """Per scope: which children's families granted it (for the purpose asked)."""
    return {
        scope: np.isin(
            table.student_ids,
            np.fromiter((sid for sid, s in allowed.items() if scope in s), dtype=np.int64),
        )
        for scope in scopes
    }


def shared(granted: Mapping[Scope, Mask], scope: Scope | None, table: FeatureTable) -> Mask:
    """Where a feature of SCOPE may count: a staff record (None) for every child screened."""
    return np.ones(len(table.student_ids), dtype=np.bool_) if scope is None else granted[scope]


def booster_weights(
    result: RuleResult, table: FeatureTable, granted: Mapping[Scope, Mask]
) -> NDArray[np.float64]:
    """What the rule's status facts add for each child: only where the rule fired and the
    family shared the fact."""
    added = np.zeros(len(table.student_ids), dtype=np.float64)
    for booster in result.rule.boosters:
        holds = atom_truth(booster.atom, table.values[booster.atom.feature.name]).true
        added += np.where(holds & shared(granted, booster.atom.feature.scope, table), booster.weight, 0.0)
    return np.where(result.fired, added, 0.0)


def evaluate(
    rules: tuple[Rule, ...] | list[Rule], table: FeatureTable, granted: Mapping[Scope, Mask]
) -> list[RuleResult]:
    results = []
    everyone = np.ones(len(table.student_ids), dtype=np.bool_)
    for rule in rules:
        consented = everyone.copy()
        for scope in rule.required_scopes:
            consented &= granted[scope]
        truth = node_truth(rule.when, table)
        results.append(
            RuleResult(
                rule=rule,
                fired=truth.true & consented,
                insufficient=truth.unknown & consented,
                not_consented=~consented,
            )
        )
    return results
