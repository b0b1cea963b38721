"""The demo world's data files (names with readings, 心の天気 reasons, calendar, world shape)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

DATA = Path(__file__).resolve().parent / "data"


def _read_tsv(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        return list(csv.DictReader(lines, delimiter="\t"))


@dataclass(frozen=True)
class NameTable:
    """Names with their kana readings and how common they are; `draw` picks by frequency."""

    kanji: NDArray[np.str_]
    kana: NDArray[np.str_]
    sex: NDArray[np.str_]
    probability: NDArray[np.float64]

    def draw(self, rng: np.random.Generator, size: int, *, sex: str | None = None) -> NDArray[np.int64]:
        """Indices into the table, drawn by frequency (among one sex's names when given)."""
        if sex is None:
            return rng.choice(len(self.kanji), size=size, p=self.probability)
        (indices,) = np.nonzero(self.sex == sex)
        weights = self.probability[indices]
        return indices[rng.choice(len(indices), size=size, p=weights / weights.sum())]


def _name_table(name: str, kanji: str, kana: str) -> NameTable:
    rows = _read_tsv(name)
    weights = np.array([float(row["weight"]) for row in rows])
    return NameTable(
        kanji=np.array([row[kanji] for row in rows]),
        kana=np.array([row[kana] for row in rows]),
        sex=np.array([row.get("sex", "") for row in rows]),
        probability=weights / weights.sum(),
    )


@cache
def family_names() -> NameTable:
    return _name_table("family_names.tsv", "family_name", "family_name_kana")


@cache
def child_given_names() -> NameTable:
    return _name_table("given_names_child.tsv", "given_name", "given_name_kana")


@cache
def adult_given_names() -> NameTable:
    return _name_table("given_names_adult.tsv", "given_name", "given_name_kana")


@cache
def variant_kanji() -> dict[str, str]:
    """異体字 → the common form (髙 → 高): how a hand-typed roster often spells the same name."""
    return {row["variant"]: row["common"] for row in _read_tsv("variants.tsv")}


@cache
def mood_reasons() -> dict[tuple[str, str], NDArray[np.str_]]:
    """心の天気 reasons by (theme, mood): theme everyday/friends/family/school, mood good/low."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in _read_tsv("mood_reasons.tsv"):
        grouped.setdefault((row["theme"], row["mood"]), []).append(row["reason"])
    return {key: np.array(reasons) for key, reasons in grouped.items()}


@cache
def world_shape() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DATA / "world.yaml").read_text(encoding="utf-8"))
    return loaded


@cache
def calendars() -> dict[int, dict[str, Any]]:
    loaded: dict[int, dict[str, Any]] = yaml.safe_load((DATA / "calendar.yaml").read_text(encoding="utf-8"))
    return loaded
