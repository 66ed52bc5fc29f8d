"""The HTML report in a real headless Chromium: loads offline, no console errors, figures visible.

Needs Debian's `chromium` (apt) and the `playwright` Python package (no browser download: the
system executable is used). Skips cleanly when either is missing.
"""

from __future__ import annotations

import io
import shutil

import pytest
from test_compare import reference_run, workspace  # noqa: F401  (fixtures: a real micro run)
from test_report import make_run

from ropebench.cli.main import main

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
        yield context.new_page()
        browser.close()


def test_report_renders_in_chromium(page, tmp_path, capsys):
    run_dir = make_run(tmp_path / "run")
    assert main(["report", str(run_dir), "--out", str(tmp_path / "site" / "report.html")]) == 0
    html = tmp_path / "site" / "report.html"
    assert f"Report: {html}" in capsys.readouterr().out
    assert (tmp_path / "site" / "summary.md").is_file()
    assert (tmp_path / "site" / "tables" / "summary.csv").is_file()

    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.goto(html.as_uri(), wait_until="load")
    assert problems == []
    assert page.title() == "ropebench: synthetic"

    images = page.locator("figure img")
    assert images.count() == 8  # short context kept, ruler, ppl, passkey, niah, factors, fitness, loss
    for i in range(images.count()):
        image = images.nth(i)
        assert image.evaluate("img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100")
        image.scroll_into_view_if_needed()
        assert _colourful(image.screenshot()), f"figure {i} looks blank"

    # The escaped model output shows up as text, not as markup.
    assert "<script>alert('x')</script>" in page.locator("table.outputs").inner_text()
    assert page.locator("table.outputs b").count() == 0
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert _colourful((tmp_path / "report.png").read_bytes())


@pytest.mark.slow
def test_report_of_a_real_run_in_chromium(page, reference_run, tmp_path):  # noqa: F811
    """The end-to-end micro comparison's report: loads offline, no console errors, figures shown."""
    from ropebench.reports import write_report

    html = write_report(reference_run, tmp_path / "report.html")
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.goto(html.as_uri(), wait_until="load")
    assert problems == []
    images = page.locator("figure img")
    assert images.count() == 4  # RULER, factors, search fitness, training loss (no ppl/grid here)
    assert all(images.nth(i).evaluate("img => img.naturalWidth > 100") for i in range(images.count()))
    assert "longrope2" in page.locator("#summary + p + div table").inner_text()


def _colourful(png: bytes) -> bool:
    """A rendered plot has many distinct colours; a blank or broken image has one or two."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(set(image.getdata())) > 50
