"""Concurrent sessions against one MedUI server: `python bench/load.py [--sessions 20] [--timeout 900] [--json]`.

Starts `streamlit run app.py` on 127.0.0.1 with a throwaway MEDUI_HOME, adds one clinician per session, then opens
every session at once as a tab of one headless Chromium (Playwright, a browser context per session, so cookies and
Streamlit sessions are separate). Each session signs in, loads the Risk page's sample patient (calculators plus the
learned model and its attributions) and the ECG page's atrial fibrillation sample (NeuroKit2 measurements, the rhythm
model and its attributions).

Real tabs rather than raw websocket clients: the frontend's own protocol (widget ids, reruns, cookies set by a
component) is what a hospital's users run, and driving it by hand would test a re-implementation instead.

Reported: sessions, sessions with an error (an exception box, a page error, or an action that timed out), weight
files read from disk by the server (its MEDUI_LOG_LEVEL=INFO log lines; each should appear once whatever the number
of sessions), the server's peak resident memory (VmHWM in /proc/PID/status), and p50/p95 of each page action.
Needs Debian's Chromium (/usr/bin/chromium) and the playwright package. Everything stops by itself after --timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' harness: one way to start a server and a Chromium
from browser_harness import CHROMIUM, CHROMIUM_ARGS, streamlit_process  # noqa: E402

PASSWORD = "Load-test-ward-9"
WEIGHT_LINE = re.compile(r"medui\.registry: loaded weights (\S+) (\S+) from disk")
RISK_SAMPLE = "Load sample: 62-year-old smoker with diabetes and treated hypertension"
ECG_SAMPLE = "Load sample: Atrial fibrillation strip (10 s, 2 leads)"
EXCEPTION = '[data-testid="stException"]'  # Streamlit's box for an uncaught exception (details redacted)


@dataclass
class Server:
    """A running `streamlit run` MedUI: its address, process, terminal log and environment."""

    base: str
    process: subprocess.Popen
    log: Path
    env: dict[str, str]

    def rss_mb(self, field_name: str = "VmHWM") -> float:
        """Resident memory of the server process from /proc (VmHWM: the peak so far; VmRSS: now), in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"^{field_name}:\s+(\d+) kB", status, re.M).group(1)) / 1024

    def error_lines(self) -> list[str]:
        """Lines of the server's log that report an error (Streamlit logs an uncaught exception at ERROR)."""
        plain = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text())  # Streamlit prints tracebacks with rich colours
        return [line for line in plain.splitlines()
                if re.search(r"\bERROR\b|Traceback|Uncaught|Exception in|^\w+Error: ", line)]

    def weight_loads(self) -> Counter:
        """How often each weight file was read from disk by the server, from its log lines."""
        return Counter(f"{model} {file}" for model, file in WEIGHT_LINE.findall(self.log.read_text()))


@contextmanager
def medui_server(home: Path, start_timeout: float = 120) -> Iterator[Server]:
    """One MedUI server on a free loopback port with its own MEDUI_HOME; stopped on exit."""
    env = {**os.environ, "MEDUI_HOME": str(home), "MEDUI_LOG_LEVEL": "INFO"}
    log = home / "terminal.log"
    with streamlit_process(env, log, start_timeout) as (base, process):
        yield Server(base, process, log, env)


def add_clinicians(server: Server, count: int) -> list[str]:
    """`count` clinician accounts in the server's database, made in one child process (one import of MedUI)."""
    names = [f"dr.load{i:02d}" for i in range(count)]
    script = ("import sys; from medui import auth; from medui.store import engine; engine()\n"
              "for name in sys.argv[1:]: auth.create_user(name, %r, 'clinician', actor='bench')" % PASSWORD)
    subprocess.run([sys.executable, "-c", script, *names], cwd=ROOT, env=server.env, check=True,
                   capture_output=True, timeout=300)
    return names


@dataclass
class SessionResult:
    user: str
    step: str = "start"  # the step under way, named in an error
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds
    errors: list[str] = field(default_factory=list)


async def _idle(page) -> None:
    """Wait until this tab's script run has finished: typing into a form that a rerun then redraws loses the text."""
    await page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


async def _step(page, result: SessionResult, name: str, action) -> None:
    """Time one page action (a coroutine ending when its result is on screen), then look for an exception box."""
    result.step = name
    start = time.monotonic()
    await action
    result.timings[name] = time.monotonic() - start
    await _idle(page)
    boxes = page.locator(EXCEPTION)
    if await boxes.count():
        result.errors.append(f"{name}: exception shown: {(await boxes.first.inner_text())[:200]}")


async def _sign_in(page, base: str, user: str) -> None:
    await page.goto(base)
    await page.get_by_label("Username").wait_for()
    await _idle(page)
    await page.get_by_label("Username").fill(user)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text(f"Welcome, {user}.").or_(page.locator(EXCEPTION)).first.wait_for()


async def _open_sample(page, nav_title: str, button: str, done) -> None:
    await page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=nav_title).click()
    await page.get_by_role("heading", name=nav_title, exact=True).wait_for()
    await page.get_by_text("No files at hand? Try a sample").click()
    await page.get_by_role("button", name=button).click()
    await done.or_(page.locator(EXCEPTION)).first.wait_for()


async def one_session(browser, base: str, user: str, action_timeout_s: float, session_timeout_s: float,
                      screenshots: Path | None = None) -> SessionResult:
    """Sign in, then the Risk sample and the ECG sample, in a browser context of its own; a screenshot of a
    session that went wrong goes to `screenshots`/USER.png."""
    result = SessionResult(user)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(action_timeout_s * 1000)
    page.on("pageerror", lambda exc: result.errors.append(f"page error: {exc}"))
    try:
        async with asyncio.timeout(session_timeout_s):
            await _step(page, result, "sign in", _sign_in(page, base, user))
            await _step(page, result, "risk sample", _open_sample(
                page, "Risk", RISK_SAMPLE, page.get_by_text("Calibrated 10-year CHD probability")))
            await _step(page, result, "ecg sample", _open_sample(
                page, "ECG", ECG_SAMPLE, page.get_by_text(re.compile(r"model ecg-rhythm v\S+, trained on"))))
    except Exception as exc:  # noqa: BLE001 -- a timeout or a missing element is this session's error, reported
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        result.errors.append(f"{result.step}: {type(exc).__name__}: {first_line}")
    finally:
        if result.errors and screenshots is not None:
            screenshots.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(screenshots / f"{user}.png"), full_page=True)
        await context.close()
    return result


async def _run_sessions(base: str, users: list[str], action_timeout_s: float, session_timeout_s: float,
                        screenshots: Path | None) -> list[SessionResult]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return list(await asyncio.gather(*(
                one_session(browser, base, u, action_timeout_s, session_timeout_s, screenshots) for u in users)))
        finally:
            await browser.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def run_load(server: Server, sessions: int, timeout_s: float = 900, action_timeout_s: float = 240,
             screenshots: Path | None = None) -> dict:
    """Open `sessions` concurrent signed-in sessions, each running both analyses, every one stopped after
    `timeout_s` (counted as an error); a summary dict."""
    users = add_clinicians(server, sessions)
    start = time.monotonic()
    # The outer limit only backs up the sessions' own: it leaves them time for a screenshot and closing.
    results = asyncio.run(asyncio.wait_for(
        _run_sessions(server.base, users, action_timeout_s, timeout_s, screenshots), timeout_s + 120))
    wall = time.monotonic() - start
    actions: dict[str, list[float]] = {}
    for r in results:
        for action, seconds in r.timings.items():
            actions.setdefault(action, []).append(seconds)
    return {
        "sessions": sessions,
        "sessions_with_errors": sum(1 for r in results if r.errors),
        "errors": {r.user: r.errors for r in results if r.errors},
        "weight_loads": dict(server.weight_loads()),
        "peak_rss_mb": round(server.rss_mb("VmHWM"), 1),
        "rss_mb_after": round(server.rss_mb("VmRSS"), 1),
        "server_errors": server.error_lines(),
        "wall_s": round(wall, 1),
        "latency_s": {a: {"n": len(v), "p50": round(statistics.median(v), 2), "p95": round(percentile(v, 95), 2)}
                      for a, v in actions.items()},
    }


def print_table(summary: dict) -> None:
    loads = summary["weight_loads"]
    print(f"{'sessions':>8} {'errors':>6} {'model loads':>11} {'peak RSS MB':>11}  action latency p50/p95 s")
    latency = ", ".join(f"{a} {v['p50']:.1f}/{v['p95']:.1f}" for a, v in summary["latency_s"].items())
    print(f"{summary['sessions']:>8} {summary['sessions_with_errors']:>6} {sum(loads.values()):>11} "
          f"{summary['peak_rss_mb']:>11.0f}  {latency}")
    print("weight files read from disk: " + (", ".join(f"{k} x{v}" for k, v in sorted(loads.items())) or "none"))
    print(f"wall {summary['wall_s']} s; RSS after {summary['rss_mb_after']:.0f} MB; "
          f"server error lines {len(summary['server_errors'])}")
    for line in summary["server_errors"][:5]:
        print(f"  server: {line[:200]}")
    for user, errors in summary["errors"].items():
        print(f"  {user}: {'; '.join(errors)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent signed-in sessions (default 20)")
    parser.add_argument("--timeout", type=float, default=900, help="stop everything after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--screenshots", type=Path, help="folder for a screenshot of each session that went wrong")
    parser.add_argument("--home", type=Path, help="keep the server's MEDUI_HOME (database, terminal.log) here "
                                                  "instead of a temporary folder; it must not exist yet")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        print("error: --sessions must be at least 1", file=sys.stderr)
        return 1
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    if args.home is not None and args.home.exists():
        print(f"error: {args.home} already exists; --home wants a new folder", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="medui-load-") as tmp:
        home = args.home or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        with medui_server(home) as server:
            summary = run_load(server, args.sessions, args.timeout, screenshots=args.screenshots)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
    return 1 if summary["sessions_with_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
