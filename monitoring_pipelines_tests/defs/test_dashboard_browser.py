"""The dashboard in a real browser: headless Chromium opens the pages from disk with the network cut off,
every chart draws an SVG, nothing is logged as an error, and a screenshot lands in test-output/.

Chromium comes from the system's packages (`apt-get install -y chromium`) when it is missing and we
are root; elsewhere the tests skip and say why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitoring_pipelines.dashboard import render_dashboard
from monitoring_pipelines_tests.dashboard.test_dashboard_render import (
    HOSTILE_CATEGORY,
    HOSTILE_SEGMENT,
    NOW,
    build_demo_warehouse,
)

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output"
# Any http(s) request goes to a closed local port, so a page that needs the network shows it.
NO_NETWORK = "--proxy-server=http://127.0.0.1:9"
# Browser log lines of console messages that mean trouble; `[dashboard]` is what the page's own hook logs.
CONSOLE_ERROR = re.compile(r"CONSOLE.*(\[dashboard\]|Uncaught|Error|Failed to load|net::ERR_)")


def _install_chromium() -> str:
    """apt-get install chromium (after `apt-get update` if the first try fails); returns the log tail."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = ""
    for commands in ([["apt-get", "install", "-y", "-q", "chromium"]],
                     [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]]):  # fmt: skip
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200, check=False)
            log = (done.stdout + done.stderr)[-2000:]
            if done.returncode != 0:
                break
        if CHROMIUM.exists():
            break
    return log


@pytest.fixture(scope="module")
def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)")
    log = _install_chromium()
    if not CHROMIUM.exists():
        pytest.skip(f"`apt-get install -y chromium` did not provide {CHROMIUM}:\n{log}")
    return CHROMIUM


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dashboard")
    warehouse, config = build_demo_warehouse(root)
    return render_dashboard(warehouse, config, root / "site", now=NOW)


def _open(chromium: Path, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        NO_NETWORK,
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        *args,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def _rendered_dom(chromium: Path, profile: Path, page: Path) -> tuple[str, list[str]]:
    done = _open(chromium, profile, page.as_uri(), "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    console_errors = [line for line in done.stderr.splitlines() if CONSOLE_ERROR.search(line)]
    return done.stdout, console_errors


def _charts(dom: str) -> dict[str, tuple[bool, int]]:
    """Per chart container: did vega-embed finish, and how many <svg> elements it holds."""
    starts = list(re.finditer(r'<div\b([^>]*\bclass="chart\b[^"]*"[^>]*)>', dom))
    census = {}
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(dom)
        attrs = match.group(1)
        chart_id = re.search(r'id="([^"]+)"', attrs)
        census[chart_id.group(1) if chart_id else str(i)] = (
            'data-rendered="true"' in attrs,
            dom[match.end() : end].count("<svg"),
        )
    return census


def _page_errors(dom: str) -> str:
    box = re.search(r'<pre id="js-errors"[^>]*>(.*?)</pre>', dom, re.S)
    return box.group(1).strip() if box else "error box missing"


def _flagged(dom: str) -> bool:
    """The page's error hook marks <body data-js-errors> on any uncaught error or console.error."""
    return re.search(r"<body[^>]*data-js-errors", dom) is not None


def _assert_every_chart_drawn(dom: str, page: Path, console_errors: list[str]) -> None:
    expected = page.read_text().count('<div class="chart"')
    census = _charts(dom)
    assert expected > 0 and len(census) == expected
    not_drawn = {cid: state for cid, state in census.items() if not state[0] or state[1] < 1}
    assert not not_drawn, f"charts without SVG: {not_drawn}"
    assert re.search(r'<body[^>]*data-charts-done="true"', dom)
    assert _page_errors(dom) == "" and not _flagged(dom)
    assert console_errors == []


@pytest.mark.parametrize("model", ["credit_default", "churn_propensity"])
def test_every_chart_renders_as_svg_without_errors(chromium: Path, site, tmp_path: Path, model: str) -> None:
    page = site.model_pages[model]
    dom, console_errors = _rendered_dom(chromium, tmp_path / "profile", page)
    _assert_every_chart_drawn(dom, page, console_errors)


def test_every_chart_on_the_index_renders(chromium: Path, site, tmp_path: Path) -> None:
    """The index's small quality and business-outcome trends draw like the model pages' charts."""
    dom, console_errors = _rendered_dom(chromium, tmp_path / "profile", site.index_path)
    _assert_every_chart_drawn(dom, site.index_path, console_errors)
    assert len(_charts(dom)) == 2  # quality and outcome of the one model that has both


def test_hostile_values_render_as_text_not_elements(chromium: Path, site, tmp_path: Path) -> None:
    """A segment value that is an <img> with a handler and a category that closes a <script>: after the page
    ran its scripts and drew its charts, the DOM holds them as text (in the HTML and in the charts' SVG)
    and no element was made from them."""
    page = site.model_pages["credit_default"]
    dom, console_errors = _rendered_dom(chromium, tmp_path / "profile", page)
    _assert_every_chart_drawn(dom, page, console_errors)  # the specs holding them parsed and drew
    assert "<img" not in dom and "<script>alert(2)" not in dom
    escaped_segment = HOSTILE_SEGMENT.replace("<", "&lt;").replace(">", "&gt;")
    escaped_category = HOSTILE_CATEGORY.replace("<", "&lt;").replace(">", "&gt;")
    assert escaped_segment in dom and escaped_category in dom  # the HTML shows them as text
    # the alert's evidence, folded in its <details>, names the category as text
    evidence = re.findall(r'<div class="evidence">(.*?)</div>', dom, re.S)
    assert any(f"top category: {escaped_category}" in e for e in evidence)
    svg_texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", dom)
    assert any(t.startswith("&lt;img src=x") for t in svg_texts)  # a chart legend names the group as text
    assert any(t.startswith("&lt;/script&gt;") for t in svg_texts)


def test_empty_model_page_opens_cleanly(chromium: Path, site, tmp_path: Path) -> None:
    dom, console_errors = _rendered_dom(chromium, tmp_path / "profile", site.model_pages["fraud_score"])
    assert "Needs attention" in dom
    assert _page_errors(dom) == "" and console_errors == []


def test_browser_check_catches_a_page_whose_charts_cannot_load(chromium: Path, site, tmp_path: Path) -> None:
    """The check above must be able to fail: drop the Vega-Lite runtime and the page reports it."""
    page = site.model_pages["credit_default"]
    broken = page.with_name("broken.html")
    broken.write_text(page.read_text().replace("assets/vega-lite.min.js", "assets/missing.js"))
    dom, console_errors = _rendered_dom(chromium, tmp_path / "profile", broken)
    assert _flagged(dom) and _page_errors(dom) != ""
    assert not any(drawn for drawn, _ in _charts(dom).values())
    assert console_errors  # the missing file and the failed embed both show in the browser log


def test_screenshots_are_saved_under_test_output(chromium: Path, site, tmp_path: Path) -> None:
    OUTPUT_DIR.mkdir(exist_ok=True)
    shots = {"index": site.index_path, **site.model_pages}
    for name, page in shots.items():
        target = OUTPUT_DIR / f"dashboard_{name}.png"
        target.unlink(missing_ok=True)
        done = _open(
            chromium, tmp_path / "profile", page.as_uri(), f"--screenshot={target}", "--window-size=1400,3000"
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (OUTPUT_DIR / "dashboard_credit_default.png").stat().st_size > 50_000  # charts, not a blank page
