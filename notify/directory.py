"""The support-resource directory on the web: a public search, and the staff pages that keep it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.core.deps import SessionDep
from app.sessions import service as web_sessions
from notify import resources
from notify.deps import NoticeStaff
from notify.models import Need, ResourceKind
from notify.schemas import LANGUAGES, ImportReport, ResourceIn, ResourcePublic
from notify.web import render

router = APIRouter()
WORDING = {
    "KINDS": resources.KIND_WORDING,
    "NEEDS": resources.NEED_WORDING,
    "LANGUAGES": LANGUAGES,
}


# --- public ---------------------------------------------------------------------------------


@router.get("/api/support-resources", response_model=list[ResourcePublic], tags=["support resources"])
def list_resources_api(
    session: SessionDep,
    area: Annotated[str | None, Query(max_length=50)] = None,
    age: Annotated[int | None, Query(ge=0, le=22)] = None,
    need: Need | None = None,
    kind: ResourceKind | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> list[ResourcePublic]:
    """地域の相談先 / Local support resources, filtered by area, age, need, kind or words."""
    found = resources.search(session=session, area=area, age=age, need=need, kind=kind, words=q)
    return [ResourcePublic.model_validate(r, from_attributes=True) for r in found]


@router.get("/support/", response_class=HTMLResponse, include_in_schema=False)
def directory_page(
    request: Request,
    session: SessionDep,
    area: Annotated[str | None, Query(max_length=50)] = None,
    age: Annotated[int | None, Query(ge=0, le=22)] = None,
    need: Need | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """The public, searchable directory (works without JavaScript)."""
    found = resources.search(session=session, area=area or None, age=age, need=need, words=q)
    return render(
        request,
        "notify/directory.html",
        {
            **WORDING,
            "found": found,
            "areas": resources.areas(session=session),
            "chosen": {"area": area or "", "age": age, "need": need.value if need else "", "q": q or ""},
        },
    )


@router.get("/support/{resource_id}", response_class=HTMLResponse, include_in_schema=False)
def resource_page(request: Request, session: SessionDep, resource_id: int) -> HTMLResponse:
    resource = resources.get(session=session, resource_id=resource_id, published_only=True)
    return render(request, "notify/resource.html", {**WORDING, "r": resource})


# --- staff ----------------------------------------------------------------------------------


def _form_data(form: FormData) -> dict[str, object]:
    data: dict[str, object] = {
        name: str(form.get(name, ""))
        for name in ResourceIn.model_fields
        if name not in ("needs", "languages", "published")
    }
    for number in ("age_min", "age_max"):
        data[number] = data[number] or 0
    data["needs"] = [str(v) for v in form.getlist("needs")]
    data["languages"] = [str(v) for v in form.getlist("languages")]
    data["published"] = form.get("published") == "1"
    return data


def _form_page(
    request: Request,
    current: NoticeStaff,
    values: dict[str, object],
    *,
    resource_id: int | None,
    errors: list[str],
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "notify/staff_resource_form.html",
        {**WORDING, "current": current, "values": values, "resource_id": resource_id, "errors": errors},
        status_code=status_code,
    )


def _errors(error: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
        for e in error.errors()
    ]


@router.get("/staff/resources", response_class=HTMLResponse, include_in_schema=False)
def staff_list(request: Request, session: SessionDep, current: NoticeStaff) -> HTMLResponse:
    found = resources.search(session=session, published_only=False)
    return render(request, "notify/staff_resources.html", {**WORDING, "current": current, "found": found})


@router.get("/staff/resources/new", response_class=HTMLResponse, include_in_schema=False)
def staff_new(request: Request, current: NoticeStaff) -> HTMLResponse:
    values: dict[str, object] = {
        "age_min": 0,
        "age_max": 18,
        "needs": [],
        "languages": ["ja"],
        "published": True,
    }
    return _form_page(request, current, values, resource_id=None, errors=[])


@router.post("/staff/resources", include_in_schema=False)
async def staff_create(request: Request, session: SessionDep, current: NoticeStaff) -> Response:
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    values = _form_data(await request.form())
    try:
        data = ResourceIn.model_validate(values)
    except ValidationError as error:
        return _form_page(request, current, values, resource_id=None, errors=_errors(error), status_code=422)
    resource = resources.create(session=session, data=data)
    return RedirectResponse(f"/staff/resources/{resource.id}?saved=1", status_code=303)


@router.get("/staff/resources.csv", include_in_schema=False)
def staff_export(session: SessionDep, current: NoticeStaff) -> Response:
    text = resources.export_csv(resources=resources.search(session=session, published_only=False))
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="support-resources.csv"'},
    )


@router.get("/staff/resources/import", response_class=HTMLResponse, include_in_schema=False)
def staff_import_form(request: Request, current: NoticeStaff) -> HTMLResponse:
    return render(
        request,
        "notify/staff_import.html",
        {"current": current, "report": None, "refused": None, "columns": resources.CSV_COLUMNS},
    )


@router.post("/staff/resources/import", response_class=HTMLResponse, include_in_schema=False)
async def staff_import(
    request: Request, session: SessionDep, current: NoticeStaff, file: Annotated[UploadFile, File()]
) -> HTMLResponse:
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    data = await file.read(resources.MAX_IMPORT_BYTES + 1)
    report: ImportReport | None = None
    refused: str | None = None
    try:
        report = resources.import_csv(session=session, data=data)
    except resources.ImportRefused as exc:
        refused = str(exc)
    status = 200 if report is not None and report.accepted else 422
    return render(
        request,
        "notify/staff_import.html",
        {"current": current, "report": report, "refused": refused, "columns": resources.CSV_COLUMNS},
        status_code=status,
    )


@router.get("/staff/resources/{resource_id}", response_class=HTMLResponse, include_in_schema=False)
def staff_edit(request: Request, session: SessionDep, current: NoticeStaff, resource_id: int) -> HTMLResponse:
    resource = resources.get(session=session, resource_id=resource_id)
    values = resource.model_dump()
    return _form_page(request, current, values, resource_id=resource_id, errors=[])


@router.post("/staff/resources/{resource_id}", include_in_schema=False)
async def staff_update(
    request: Request, session: SessionDep, current: NoticeStaff, resource_id: int
) -> Response:
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    values = _form_data(await request.form())
    try:
        data = ResourceIn.model_validate(values)
    except ValidationError as error:
        return _form_page(
            request, current, values, resource_id=resource_id, errors=_errors(error), status_code=422
        )
    resources.update(session=session, resource_id=resource_id, data=data)
    return RedirectResponse(f"/staff/resources/{resource_id}?saved=1", status_code=303)


@router.post("/staff/resources/{resource_id}/delete", include_in_schema=False)
async def staff_delete(
    request: Request, session: SessionDep, current: NoticeStaff, resource_id: int
) -> Response:
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    resources.delete(session=session, resource_id=resource_id)
    return RedirectResponse("/staff/resources", status_code=303)
