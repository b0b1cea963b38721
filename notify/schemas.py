"""Notify's API and form shapes: what staff may write about a support resource, what anyone reads."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from notify.models import Need, ResourceKind

LANGUAGES = {
    "ja": "日本語",
    "en": "English",
    "pt": "Português",
    "zh": "中文",
    "ko": "한국어",
    "vi": "Tiếng Việt",
    "tl": "Tagalog",
    "es": "Español",
    "ne": "नेपाली",
    "id": "Bahasa Indonesia",
}

Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class ResourceIn(BaseModel):
    """A support resource as staff write it (form, CSV row or API); checked the same way each time."""

    model_config = ConfigDict(extra="forbid")

    name_ja: Annotated[Text, StringConstraints(min_length=1, max_length=100)]
    name_en: Annotated[Text, StringConstraints(max_length=100)] = ""
    kind: ResourceKind
    area: Annotated[Text, StringConstraints(min_length=1, max_length=50)]
    age_min: int = Field(default=0, ge=0, le=22)
    age_max: int = Field(default=18, ge=0, le=22)
    needs: list[Need] = Field(default_factory=list)
    hours_ja: Annotated[Text, StringConstraints(max_length=200)] = ""
    hours_en: Annotated[Text, StringConstraints(max_length=200)] = ""
    cost_ja: Annotated[Text, StringConstraints(max_length=100)] = ""
    cost_en: Annotated[Text, StringConstraints(max_length=100)] = ""
    contact: Annotated[Text, StringConstraints(max_length=200)] = ""
    url: Annotated[Text, StringConstraints(max_length=300)] = ""
    address: Annotated[Text, StringConstraints(max_length=200)] = ""
    accessibility: Annotated[Text, StringConstraints(max_length=300)] = ""
    languages: list[str] = Field(default_factory=list)
    description_ja: Annotated[Text, StringConstraints(max_length=1000)] = ""
    description_en: Annotated[Text, StringConstraints(max_length=1000)] = ""
    published: bool = True

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(
                "URL は http:// か https:// で始めてください / the URL must start with http(s)://"
            )
        return value

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"未対応の言語コード / unknown language codes: {', '.join(unknown)}")
        return sorted(set(value), key=list(LANGUAGES).index)

    @field_validator("needs")
    @classmethod
    def _distinct_needs(cls, value: list[Need]) -> list[Need]:
        return sorted(set(value), key=list(Need).index)

    @model_validator(mode="after")
    def _age_range(self) -> Self:
        if self.age_min > self.age_max:
            raise ValueError("対象年齢の下限が上限を超えています / age_min is above age_max")
        return self


class ResourcePublic(ResourceIn):
    """A support resource as anyone may read it: nothing here is about a person."""

    id: int


class ImportProblem(BaseModel):
    line: int = Field(description="CSV row number; the header is row 1")
    column: str | None
    message: str


class ImportReport(BaseModel):
    encoding: str
    rows: int
    created: int
    updated: int
    problems: list[ImportProblem]

    @property
    def accepted(self) -> bool:
        return not self.problems
