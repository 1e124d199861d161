"""The run report: report.html is report.md as one self-contained, escaped page; the plots
mark the kept epoch and make a confusion matrix's errors stand out."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from conftest import TrainedRepo

from training.report import confusion_colours
from training.report_html import render


def test_text_is_escaped_and_the_page_allows_no_script(tmp_path: Path) -> None:
    markdown = (
        "# Training run 1: <script>alert(1)</script>\n\n"
        "| class | f1 |\n|---|---|\n| <img src=x onerror=alert(1)> | 0.5 |\n\n"
        "- outcome: **published**\n"
    )
    page = render(markdown, tmp_path, 'a "name" <b>')
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<strong>published</strong>" in page and "<title>a &quot;name&quot; &lt;b&gt;" in page
    assert "default-src 'none'; img-src data:" in page


def test_images_are_inlined_and_missing_ones_said(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"\x89PNG fake")
    page = render("![loss](plots/loss.png)\n\n![gone](plots/gone.png)\n", tmp_path, "t")
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in page
    assert "(image plots/gone.png not found)" in page


def test_errors_stand_out_in_the_confusion_matrix() -> None:
    colours = confusion_colours([[27, 0], [1, 26]])
    correct, error, empty = colours[0, 0], colours[1, 0], colours[0, 1]
    assert correct[2] > correct[0]  # blue
    assert error[0] > 0.9 and error[2] < 0.8  # red, though 1 of 27 rows
    assert np.allclose(empty, 1.0)  # white


def test_a_real_run_writes_a_self_contained_report(trained_repo: TrainedRepo) -> None:
    meta = trained_repo.metadata()
    page = Path(meta["training"]["report"]).with_suffix(".html").read_text()
    images = re.findall(r'<img alt="([a-z_]+)" src="data:image/png;base64,', page)
    assert sorted(images) == ["accuracy", "confusion_matrix", "loss"]
    assert not re.search(r'(src|href)="(?!data:)', page), "nothing loaded from outside"
    assert meta["fit_diagnosis"]["summary"] in page
    # The balance as a table, not a raw Python dict.
    assert "Class balance of the train split" in page and "{&#x27;mode&#x27;" not in page
