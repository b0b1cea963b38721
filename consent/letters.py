"""Printable invitation letters: one A4 page per child, Japanese, with a QR code and the code."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF

from app.core.config import get_settings
from app.core.errors import ConfigurationError
from consent.invitations import Letter, display
from consent.notice import CONTACT

# Debian's fonts-noto-cjk (installed by `make test` and the image); face 0 of the collection is JP.
KNOWN_FONTS = [
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 0),
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf"), 0),
]


@lru_cache
def japanese_font() -> tuple[Path, int]:
    """A font file with Japanese glyphs and its face index: a known path, else fontconfig's pick."""
    for path, index in KNOWN_FONTS:
        if path.exists():
            return path, index
    fc_match = shutil.which("fc-match")
    if fc_match:
        found = subprocess.run(  # noqa: S603 - fontconfig's own tool, fixed arguments
            [fc_match, "-f", "%{file}\t%{index}", "Noto Sans CJK JP:style=Regular"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        file, _, face = found.partition("\t")
        if file and Path(file).exists() and "CJK" in file:
            return Path(file), int(face or 0)
    raise ConfigurationError("no Japanese font: install Debian's fonts-noto-cjk (make system-deps)")


def link_url(code: str) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}/guardian/link?code={code}"


def _qr_png(data: str) -> io.BytesIO:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="png", scale=8, border=2)
    buffer.seek(0)
    return buffer


def render_letters(letters: Sequence[Letter]) -> bytes:
    """One PDF, one page per child, ready to print and hand out in class."""
    font, index = japanese_font()
    tz = ZoneInfo(get_settings().timezone)
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.add_font("NotoJP", fname=str(font), collection_font_number=index)
    for letter in letters:
        student, homeroom = letter.student, letter.homeroom
        expires = letter.expires_at.astimezone(tz)
        pdf.add_page()
        pdf.set_font("NotoJP", size=10)
        pdf.cell(
            0, 6, f"{letter.school.name}　{homeroom.name if homeroom else ''}", new_x="LMARGIN", new_y="NEXT"
        )
        pdf.set_font("NotoJP", size=18)
        pdf.ln(4)
        pdf.cell(0, 12, "「つなぐ」ご利用の案内（保護者の方へ）", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("NotoJP", size=12)
        pdf.cell(
            0, 8, f"{student.family_name} {student.given_name} さんの保護者様", new_x="LMARGIN", new_y="NEXT"
        )
        pdf.ln(2)
        pdf.set_font("NotoJP", size=10.5)
        pdf.multi_cell(
            0,
            6,
            "加賀市では、ご家庭の同意をいただいた場合に限り、学校と市の情報をつないで、"
            "お子さまの困りごとに早く気づき、支援につなげる取り組みを行っています。"
            "ご利用は任意です。同意しなくても不利益はありません。",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.ln(4)
        pdf.image(_qr_png(link_url(letter.code)), x=pdf.l_margin, y=pdf.get_y(), w=45, h=45)
        top = pdf.get_y()
        pdf.set_xy(pdf.l_margin + 52, top)
        pdf.set_font("NotoJP", size=10)
        pdf.cell(0, 6, "招待コード", new_x="LEFT", new_y="NEXT")
        pdf.set_font("NotoJP", size=20)
        pdf.cell(0, 12, display(letter.code), new_x="LEFT", new_y="NEXT")
        pdf.set_font("NotoJP", size=10)
        pdf.cell(
            0, 6, f"有効期限　{expires:%Y年%m月%d日 %H:%M}まで（1回限り有効）", new_x="LEFT", new_y="NEXT"
        )
        pdf.set_xy(pdf.l_margin, top + 50)
        pdf.set_font("NotoJP", size=11)
        for step in (
            "1. スマートフォンで左のQRコードを読み取ります（または下のアドレスを開きます）。",
            "2. マイナンバーカードでサインインします。",
            "3. 表示されたお子さまの名前と生年月日を確かめます。",
            "4. 共有してよい情報と目的を、ひとつずつ選びます（すべて任意です）。",
        ):
            pdf.multi_cell(0, 7, step, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("NotoJP", size=9)
        pdf.multi_cell(0, 5, link_url(letter.code), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("NotoJP", size=10)
        pdf.multi_cell(
            0,
            6,
            "このコードは、お子さまとご家庭をつなぐためのものです。他の人に渡さないでください。"
            "紛失したときは学校に再発行を依頼してください（古いコードは使えなくなります）。",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.ln(2)
        pdf.multi_cell(0, 6, f"お問い合わせ：{CONTACT.ja}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("NotoJP", size=8.5)
        pdf.multi_cell(
            0,
            5,
            "English: This letter invites you to link your child to tsunagu, the city's consent-based "
            "support service. Scan the QR code, sign in with your My Number card, check your child's "
            "name and birth date, and choose what to share. Everything is optional.",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())
