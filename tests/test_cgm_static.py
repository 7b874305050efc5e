"""The static AGP report (matplotlib): a one-page A4 PDF and a 150-dpi PNG; the subject id is plain text."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from medui.signals.cgm import read_cgm
from medui.signals.cgm.agp_static import A4_INCHES, PNG_DPI, agp_figure_static, agp_pdf, agp_png
from medui.signals.cgm.samples import generic_csv, libreview_csv, synthetic_frame

MARKUP_ID = "<b>$x^2$</b> & {\\bf id} %s 'q' \"dq\""


@pytest.fixture(scope="module")
def generic():
    return read_cgm(generic_csv(), "synthetic_cgm_2_subjects.csv")


@pytest.fixture(scope="module")
def markup():
    frame = synthetic_frame(1, days=3, seed=5).assign(id=MARKUP_ID)
    return read_cgm(generic_csv(frame), "markup.csv")


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


def check_png(png: bytes) -> None:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert image.size == tuple(int(inches * PNG_DPI) for inches in A4_INCHES)  # A4 at 150 dpi: 1240 x 1753


def test_pdf_is_one_page(generic):
    pdf = agp_pdf(generic, "synthetic-A")
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == 1


def test_png_is_a4_at_150_dpi():
    cgm = read_cgm(libreview_csv(), "synthetic_libreview.csv")  # mmol/L file: drawn in mmol/L
    check_png(agp_png(cgm, cgm.frame["id"].iloc[0]))


def test_subject_id_with_markup_is_plain_text(markup):
    pdf, png = agp_pdf(markup, MARKUP_ID), agp_png(markup, MARKUP_ID)
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == 1
    check_png(png)
    fig = agp_figure_static(markup, MARKUP_ID)
    texts = [t for t in fig.texts if MARKUP_ID in t.get_text()]
    assert texts and all(not t.get_parse_math() for t in texts)  # "$x^2$" is drawn as typed, not as mathtext
    assert any("Not enough data" in t.get_text() for t in fig.texts)  # 3 days: the sufficiency warning


def test_unknown_subject_is_refused(generic):
    with pytest.raises(ValueError, match="No readings"):
        agp_pdf(generic, "nobody")
