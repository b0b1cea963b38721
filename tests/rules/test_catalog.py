"""The catalog loader: strict, explains every refusal with file, line and fix, runs no code."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rules.catalog import CATALOG_DIR, CatalogError, LiveCatalog, RuleStatus, load_catalog
from rules.features import FEATURES, Kind


def _write(directory: Path, text: str, name: str = "test.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


RULE = """\
category: non_attendance
rules:
  - id: chronic_absence
    title: {{ja: 欠席, en: absent}}
    description: {{ja: 欠席が多い, en: absent often}}
    scopes: [{scopes}]
    weight: 2
    atoms:
      absent_often: {atom}
    when: {when}
{extra}"""


def _rule(
    atom: str = "absence_rate_30d >= 0.10",
    when: str = "absent_often",
    scopes: str = "school.attendance",
    extra: str = "",
) -> str:
    return RULE.format(atom=atom, when=when, scopes=scopes, extra=extra)


def _problems(tmp_path: Path, text: str) -> list[str]:
    _write(tmp_path, text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_catalog_loads_and_has_trial_rules() -> None:
    catalog = load_catalog()
    assert {rule.category for rule in catalog.rules} >= {"non_attendance", "young_carer"}
    assert any(rule.status is RuleStatus.trial for rule in catalog.rules)
    assert len(catalog.version) == 12


def test_a_good_rule_loads(tmp_path: Path) -> None:
    _write(tmp_path, _rule())
    [rule] = load_catalog(tmp_path).rules
    assert rule.atoms[0].text == "absence_rate_30d >= 0.1"
    assert rule.scopes == {"school.attendance"}


def test_unknown_feature_names_file_line_and_a_suggestion(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, _rule(atom="absense_rate_30d >= 0.10"))
    assert problem.startswith("test.yaml:9: unknown feature 'absense_rate_30d'")
    assert "did you mean 'absence_rate_30d'?" in problem


def test_unknown_operator(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, _rule(atom="absence_rate_30d => 0.10"))
    assert "test.yaml:9: unknown operator '=>'" in problem
    assert ">=" in problem


def test_rate_written_as_percent_is_refused_with_the_fix(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, _rule(atom="absence_rate_30d >= 10"))
    assert "rate between 0 and 1" in problem and "write 0.10" in problem


def test_a_rule_cannot_run_code(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, _rule(atom="__import__('os').system('true')"))
    assert "a rule cannot contain code" in problem
    tagged = _rule(atom="!!python/object/apply:os.system ['true']")
    [problem] = _problems(tmp_path, tagged)
    assert "test.yaml:9:" in problem and "cannot run code" in problem


def test_sex_and_nationality_are_never_inputs(tmp_path: Path) -> None:
    assert not {"sex", "nationality"} & set(FEATURES)
    [problem] = _problems(tmp_path, _rule(atom="sex == true"))
    assert "never a rule input" in problem


def test_a_status_fact_cannot_fire_a_rule_alone(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _rule(atom="receives_public_assistance == true", scopes="myna.benefits"))
    assert any("may add weight but never fire a rule" in p for p in problems)
    # The same fact is accepted as an addition to a behavioural rule.
    _write(
        tmp_path,
        _rule(
            scopes="school.attendance, myna.benefits",
            extra="    adds:\n      - {atom: receives_public_assistance == true, weight: 1}\n",
        ),
    )
    [rule] = load_catalog(tmp_path).rules
    assert rule.boosters[0].atom.feature.kind is Kind.status


def test_staff_observations_count_beside_the_data_never_alone(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _rule(atom="observations_hunger_30d >= 1"))
    assert any("test.yaml:10:" in p and "staff observations alone could fire" in p for p in problems)
    both = "absence_rate_30d >= 0.10\n      noticed: observations_hunger_30d >= 1"
    problems = _problems(tmp_path, _rule(atom=both, when="{at_least: 1, of: [absent_often, noticed]}"))
    assert any("staff observations alone could fire" in p for p in problems)
    # One of two beside the data, or weight added to a rule the data fired: accepted; an
    # observation count reads no consent category, so the scopes stay those of the data.
    _write(tmp_path, _rule(atom=both, when="{at_least: 2, of: [absent_often, noticed]}"))
    [rule] = load_catalog(tmp_path).rules
    assert rule.required_scopes == {"school.attendance"}
    _write(tmp_path, _rule(extra="    adds:\n      - {atom: observations_hunger_30d >= 1, weight: 1}\n"))
    [rule] = load_catalog(tmp_path).rules
    assert rule.boosters[0].atom.feature.scope is None


def test_scopes_must_match_the_features(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, _rule(scopes="school.mood"))
    assert "test.yaml:6:" in problem and "set scopes to [school.attendance]" in problem


def test_structural_errors_name_the_key_and_line(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, _rule(extra="    colour: red\n"))
    assert problem.startswith("test.yaml:11:") and "remove 'colour'" in problem
    problems = _problems(tmp_path, _rule(when="missing_atom"))
    assert any("test.yaml:10:" in p and "not one of this rule's atoms" in p for p in problems)
    problems = _problems(tmp_path, "category: astrology\nrules: []\n")
    assert any(p.startswith("test.yaml:1:") and "non_attendance" in p for p in problems)


def test_at_least_more_than_its_parts_is_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _rule(when="{at_least: 3, of: [absent_often, absent_often]}"))
    assert any("can never hold" in p for p in problems)


def test_the_last_good_catalog_stays_in_force(tmp_path: Path) -> None:
    for path in CATALOG_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    live = LiveCatalog(directory=tmp_path)
    good = live.get()
    broken = _write(tmp_path, _rule(atom="absence_rate_30d >>= 0.1"), name="zz_broken.yaml")
    os.utime(broken, (1, 1))
    assert live.get() is good
    assert live.last_error is not None and "zz_broken.yaml:9" in live.last_error.message
    broken.unlink()
    assert live.get().version == good.version and live.last_error is None
