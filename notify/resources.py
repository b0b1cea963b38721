"""The support-resource directory: staff keep it (pages, CSV import), anyone searches it.

CSV import is all or nothing: every row is checked first and the report names each problem
by row and column; only a file without problems changes anything. Files saved by Excel in
Japan arrive as Shift_JIS (cp932) or UTF-8 with a BOM; both are read, as is plain UTF-8.
A cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is refused, so
an export of the directory can never carry an injected formula back into someone's Excel.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.errors import Conflict, NotFound
from app.core.types import utcnow
from consent.scopes import Wording
from notify import messages
from notify.models import Need, ResourceKind, SupportResource
from notify.schemas import ImportProblem, ImportReport, ResourceIn

KIND_WORDING: dict[ResourceKind, Wording] = {
    ResourceKind.kodomo_shokudo: Wording("こども食堂", "Children's cafeteria"),
    ResourceKind.consultation: Wording("相談窓口", "Consultation desk"),
    ResourceKind.learning_support: Wording("学習支援", "Study support"),
    ResourceKind.ibasho: Wording("居場所", "A place to be"),
    ResourceKind.young_carer: Wording("ヤングケアラー支援", "Support for young carers"),
    ResourceKind.school_aid: Wording("就学援助の申請", "School attendance aid application"),
    ResourceKind.financial: Wording("手当・経済的な支援", "Allowances and financial help"),
    ResourceKind.health: Wording("心と体の相談", "Health and feelings"),
    ResourceKind.other: Wording("その他", "Other"),
}
NEED_WORDING: dict[Need, Wording] = {
    Need.meals: Wording("食事", "Meals"),
    Need.study: Wording("勉強", "Study"),
    Need.consultation: Wording("相談したい", "Someone to talk to"),
    Need.place: Wording("居場所", "A place to be"),
    Need.caregiving: Wording("家族の世話", "Caring for family"),
    Need.money: Wording("お金・手当", "Money and allowances"),
    Need.health: Wording("心と体", "Health"),
    Need.school: Wording("学校のこと", "School"),
}

CSV_COLUMNS = [
    "id",
    *(name for name in ResourceIn.model_fields if name != "published"),
    "published",
]
REQUIRED_COLUMNS = {"name_ja", "kind", "area"}
LIST_COLUMNS = {"needs", "languages"}
MAX_IMPORT_BYTES = 1_000_000
MAX_IMPORT_ROWS = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ImportRefused(Exception):
    """The file as a whole cannot be read (encoding, size, header)."""


def _apply(resource: SupportResource, data: ResourceIn) -> SupportResource:
    for name, value in data.model_dump().items():
        setattr(resource, name, [str(v) for v in value] if name in LIST_COLUMNS else value)
    resource.updated_at = utcnow()
    return resource


def _clash(session: Session, data: ResourceIn, *, except_id: int | None) -> SupportResource | None:
    query = select(SupportResource).where(
        SupportResource.name_ja == data.name_ja, SupportResource.area == data.area
    )
    if except_id is not None:
        query = query.where(SupportResource.id != except_id)
    return session.exec(query).first()


def get(*, session: Session, resource_id: int, published_only: bool = False) -> SupportResource:
    resource = session.get(SupportResource, resource_id)
    if resource is None or (published_only and not resource.published):
        raise NotFound("相談先が見つかりません。 / No such support resource.")
    return resource


def create(*, session: Session, data: ResourceIn) -> SupportResource:
    if _clash(session, data, except_id=None):
        raise Conflict(f"「{data.name_ja}」（{data.area}）はすでに登録されています。 / Already listed.")
    resource = _apply(SupportResource(name_ja=data.name_ja, kind=data.kind, area=data.area), data)
    session.add(resource)
    session.flush()
    return resource


def update(*, session: Session, resource_id: int, data: ResourceIn) -> SupportResource:
    resource = get(session=session, resource_id=resource_id)
    if _clash(session, data, except_id=resource_id):
        raise Conflict(f"「{data.name_ja}」（{data.area}）はすでに登録されています。 / Already listed.")
    session.add(_apply(resource, data))
    session.flush()
    return resource


def delete(*, session: Session, resource_id: int) -> None:
    session.delete(get(session=session, resource_id=resource_id))
    session.flush()


def search(
    *,
    session: Session,
    area: str | None = None,
    age: int | None = None,
    need: Need | None = None,
    kind: ResourceKind | None = None,
    words: str | None = None,
    published_only: bool = True,
) -> list[SupportResource]:
    """Resources matching every filter given. The directory is small (hundreds of rows), so
    list filters (needs) are applied here rather than through database-specific JSON operators."""
    query = select(SupportResource).order_by(col(SupportResource.kind), col(SupportResource.name_ja))
    if published_only:
        query = query.where(col(SupportResource.published))
    if area:
        query = query.where(col(SupportResource.area).in_([area, "市内全域"]))
    if age is not None:
        query = query.where(SupportResource.age_min <= age, SupportResource.age_max >= age)
    if kind is not None:
        query = query.where(SupportResource.kind == kind)
    found = list(session.exec(query).all())
    if need is not None:
        found = [r for r in found if need.value in r.needs]
    if words:
        lowered = words.strip().lower()
        found = [
            r
            for r in found
            if any(
                lowered in text.lower()
                for text in (r.name_ja, r.name_en, r.description_ja, r.description_en, r.area)
            )
        ]
    return found


def areas(*, session: Session) -> list[str]:
    return list(
        session.exec(select(SupportResource.area).distinct().order_by(col(SupportResource.area))).all()
    )


def card(resource: SupportResource, *, base_url: str) -> messages.ResourceCard:
    return messages.ResourceCard(
        name_ja=resource.name_ja,
        name_en=resource.name_en,
        kind_ja=KIND_WORDING[resource.kind].ja,
        area=resource.area,
        hours_ja=resource.hours_ja,
        contact=resource.contact,
        url=f"{base_url.rstrip('/')}/support/{resource.id}",
    )


def carousel(
    *, session: Session, settings: Settings, chosen: Sequence[SupportResource] | None = None
) -> messages.Message:
    """A Flex carousel of resources (the chosen ones, or the city-wide ones first) for LINE."""
    if chosen is None:
        listed = search(session=session)
        chosen = sorted(listed, key=lambda r: (r.area != "市内全域", list(ResourceKind).index(r.kind)))
    return messages.resource_carousel(
        cards=[card(r, base_url=settings.public_base_url) for r in chosen],
        directory_url=f"{settings.public_base_url.rstrip('/')}/support/",
        contact=messages.Contact(ja=settings.notify_contact_ja, en=settings.notify_contact_en),
    )


# --- CSV ------------------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str]:
    """The file's text and the name of its encoding: UTF-8 (with or without BOM) or Shift_JIS."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "UTF-8 (BOM)"
        except UnicodeDecodeError as exc:
            raise ImportRefused("UTF-8 として読めない部分があります / not valid UTF-8") from exc
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        # cp932 is what Windows and Excel write when they say Shift_JIS (it adds ① and 髙).
        return data.decode("cp932"), "Shift_JIS"
    except UnicodeDecodeError as exc:
        raise ImportRefused(
            "文字コードを判別できません。UTF-8 か Shift_JIS で保存してください。"
            " / Unknown encoding: save as UTF-8 or Shift_JIS."
        ) from exc


def _split_list(cell: str) -> list[str]:
    for separator in ("、", ",", ";", "/"):
        cell = cell.replace(separator, "|")
    return [part.strip() for part in cell.split("|") if part.strip()]


def _row_values(row: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, cell in row.items():
        if name == "id" or cell == "":
            continue
        if name in LIST_COLUMNS:
            values[name] = _split_list(cell)
        elif name == "published":
            values[name] = cell.strip().lower() not in ("0", "false", "no", "いいえ", "非公開")
        else:
            values[name] = cell
    return values


def _problems_of(error: ValidationError, line: int) -> list[ImportProblem]:
    problems = []
    for item in error.errors():
        column = str(item["loc"][0]) if item["loc"] else None
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(ImportProblem(line=line, column=column, message=message))
    return problems


def import_csv(*, session: Session, data: bytes) -> ImportReport:
    """Check every row; when none has a problem, create or update them all (else change nothing)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRefused(f"ファイルが大きすぎます（上限 {MAX_IMPORT_BYTES // 1000} KB） / file too large")
    text, encoding = decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise ImportRefused("空のファイルです / the file is empty")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = sorted(REQUIRED_COLUMNS - set(header))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"不明な列 / unknown columns: {', '.join(unknown)}")
        if missing:
            parts.append(f"必須の列がありません / missing columns: {', '.join(missing)}")
        raise ImportRefused("; ".join(parts))
    reader.fieldnames = header

    problems: list[ImportProblem] = []
    planned: list[tuple[int | None, ResourceIn]] = []
    seen: dict[tuple[str, str], int] = {}
    rows = 0
    for index, raw in enumerate(reader, start=2):
        if None in raw:
            problems.append(ImportProblem(line=index, column=None, message="列が多すぎます / too many cells"))
            continue
        row = {k: (v or "") for k, v in raw.items()}
        if not any(cell.strip() for cell in row.values()):
            continue
        rows += 1
        if rows > MAX_IMPORT_ROWS:
            raise ImportRefused(f"行が多すぎます（上限 {MAX_IMPORT_ROWS} 行） / too many rows")
        formula = [name for name, cell in row.items() if cell.startswith(FORMULA_STARTS)]
        for name in formula:
            problems.append(
                ImportProblem(
                    line=index,
                    column=name,
                    message="数式として実行されうる文字（= + - @）で始まるセルは取り込めません"
                    " / a cell must not start with = + - @ (spreadsheet formula)",
                )
            )
        if formula:
            continue
        resource_id: int | None = None
        if row.get("id", "").strip():
            try:
                resource_id = int(row["id"])
            except ValueError:
                problems.append(
                    ImportProblem(line=index, column="id", message="id は数字です / id must be a number")
                )
                continue
        try:
            parsed = ResourceIn.model_validate(_row_values(row))
        except ValidationError as error:
            problems.extend(_problems_of(error, index))
            continue
        key = (parsed.name_ja, parsed.area)
        if key in seen:
            problems.append(
                ImportProblem(
                    line=index, column="name_ja", message=f"{seen[key]} 行目と重複 / same as row {seen[key]}"
                )
            )
            continue
        seen[key] = index
        if resource_id is not None and session.get(SupportResource, resource_id) is None:
            problems.append(
                ImportProblem(
                    line=index, column="id", message=f"id {resource_id} は登録されていません / no such id"
                )
            )
            continue
        clash = _clash(session, parsed, except_id=resource_id)
        if clash is not None:
            problems.append(
                ImportProblem(
                    line=index,
                    column="name_ja",
                    message=f"すでに登録済み（id {clash.id}）。更新するには id 列に書いてください"
                    f" / already listed as id {clash.id}; put it in the id column to update",
                )
            )
            continue
        planned.append((resource_id, parsed))

    if problems:
        return ImportReport(encoding=encoding, rows=rows, created=0, updated=0, problems=problems)
    created = updated = 0
    for resource_id, parsed in planned:
        if resource_id is None:
            create(session=session, data=parsed)
            created += 1
        else:
            update(session=session, resource_id=resource_id, data=parsed)
            updated += 1
    return ImportReport(encoding=encoding, rows=rows, created=created, updated=updated, problems=[])


def export_csv(*, resources: Sequence[SupportResource]) -> str:
    """The directory as CSV (UTF-8 with BOM, which Excel opens correctly), importable again."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for resource in resources:
        row = []
        for name in CSV_COLUMNS:
            value = getattr(resource, name)
            if name in LIST_COLUMNS:
                value = "|".join(value)
            elif isinstance(value, bool):
                value = "1" if value else "0"
            cell = "" if value is None else str(value)
            # OWASP's advice for CSV injection: a leading quote makes a spreadsheet show text.
            row.append("'" + cell if cell.startswith(FORMULA_STARTS) else cell)
        writer.writerow(row)
    return out.getvalue()
