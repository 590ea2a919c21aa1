"""The nightly report opened in a real headless Chromium: it renders, shows the flagged runners, and the
embedded plots decode; the page runs no script and logs no console errors."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not an installed package

from bench.synthetic_lake import LakeSpec, write_synthetic_lake  # noqa: E402
from infra.settings import Paths  # noqa: E402
from pipelines.nightly.job import run_nightly  # noqa: E402

D = dt.date(2025, 6, 30)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make browser / apt-get install chromium)"
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    paths = Paths(tmp_path_factory.mktemp("report") / "data").ensure()
    write_synthetic_lake(
        paths, LakeSpec(runners=60, days=60, strides_per_run=8, end_date=D.isoformat(), seed=3)
    )
    result = run_nightly(paths, D)
    import pyarrow.parquet as pq

    # the cohort with the most flagged runners
    best, flagged = None, []
    for html in result.reports:
        rows = pq.read_table(html.with_suffix(".parquet")).to_pylist()
        ids = [r["runner_id"] for r in rows if r["risk_level"] != "low"]
        if best is None or len(ids) > len(flagged):
            best, flagged = html, ids
    assert flagged, "the synthetic lake should flag someone"
    return best, flagged


def test_dom_renders_flagged_runners(report: tuple[Path, list[str]], tmp_path: Path) -> None:
    html, flagged = report
    res = chromium(tmp_path, "--dump-dom", html.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert 'id="headline"' in dom and "need" in dom
    for rid in flagged:
        assert rid in dom
    assert "Data quality" in dom and "What could not be computed" in dom
    console_errors = [line for line in res.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console_errors, console_errors
    assert "<script" not in html.read_text().lower()


def test_embedded_plots_decode(report: tuple[Path, list[str]]) -> None:
    from PIL import Image

    html, _ = report
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html.read_text())
    assert len(images) >= 3  # cohort distributions + at least one runner trend
    for b64 in images:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        assert img.width > 200 and img.height > 100


def test_screenshot_is_not_blank(report: tuple[Path, list[str]], tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    html, _ = report
    shot = tmp_path / "report.png"
    res = chromium(
        tmp_path, "--hide-scrollbars", "--window-size=1200,1800", f"--screenshot={shot}", html.as_uri()
    )
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    img = Image.open(shot).convert("L")
    assert img.size == (1200, 1800)
    assert ImageStat.Stat(img).stddev[0] > 10  # text and plots, not an empty page
