"""Concurrent sessions share one copy of each model.

The browser test is the CI-sized run of bench/load.py (the full 20-session run is `python bench/load.py`): a few
concurrent browser sessions against one `streamlit run` server, each signing in and running the Risk and ECG samples.
No session sees an error, each model's weights are read from disk once by the server (not once per session), and
its resident memory stays bounded. Latencies are printed, not asserted (timings belong to the bench).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time

import pytest
from browser_harness import ROOT, require_browser

SESSIONS = 3
PEAK_RSS_BOUND_MB = 4096  # torch, NeuroKit2, plotly and two small models: measured about 1 GB


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_first_requests_at_once_read_each_models_weights_once(monkeypatch, caplog):
    """Sessions are threads of one process: the first requests of several must not each load the model."""
    import medui.registry
    import medui.training.serving
    from medui.risk import model as risk_model
    from medui.signals.ecg import rhythm

    monkeypatch.setattr(risk_model, "_CACHE", {})
    monkeypatch.setattr(rhythm, "_CACHE", {})
    real = medui.registry.load_state_dict

    def slow_read(*args, **kwargs):
        time.sleep(0.3)  # a slow disk: every thread reaches the cache check before the first read ends
        return real(*args, **kwargs)

    monkeypatch.setattr(medui.registry, "load_state_dict", slow_read)
    monkeypatch.setattr(medui.training.serving, "load_state_dict", slow_read)
    start, served, errors = threading.Barrier(4), [], []

    def session() -> None:
        try:
            start.wait()
            served.append((risk_model.load(), rhythm._load()[0]))
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise be lost
            errors.append(exc)

    with caplog.at_level(logging.INFO, logger="medui.registry"):
        threads = [threading.Thread(target=session) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    reads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded weights")]
    assert sorted(reads) == ["loaded weights ecg-rhythm/1 model.safetensors from disk",
                             "loaded weights risk-chd/1 model.safetensors from disk"]
    assert len({id(risk) for risk, _ in served}) == 1 and len({id(ecg) for _, ecg in served}) == 1


def test_the_slow_password_hash_runs_outside_the_databases_write_lock(monkeypatch):
    """20 parallel sign-ins once failed with "database is locked": each hashed while holding SQLite's write lock."""
    import sqlite3

    from medui import auth
    from medui.config import settings

    url = settings().database_url
    if not url.startswith("sqlite:///"):
        pytest.skip("the write lock checked here is SQLite's")
    auth.create_user("dr.grey", "Correct-Horse-9", "clinician", actor="test")
    real, held = auth.verify_password, []

    def verify(stored: str, password: str) -> bool:
        probe = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")  # fails at once while another connection holds the write lock
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            held.append(str(exc))
        finally:
            probe.close()
        return real(stored, password)

    monkeypatch.setattr(auth, "verify_password", verify)
    assert auth.authenticate("dr.grey", "Correct-Horse-9").username == "dr.grey"
    with pytest.raises(auth.AuthError, match=auth.BAD_CREDENTIALS):
        auth.authenticate("dr.grey", "Not-the-password-1")
    with pytest.raises(auth.AuthError):
        auth.authenticate("nobody", "Not-the-password-1")
    assert held == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(480)
def test_concurrent_browser_sessions_share_one_copy_of_each_model_with_no_errors(tmp_path):
    require_browser()
    bench = _bench()
    with bench.medui_server(tmp_path) as server:
        summary = bench.run_load(server, SESSIONS, timeout_s=240, action_timeout_s=200,
                                 screenshots=ROOT / "test-output" / "test_load")
    bench.print_table(summary)  # shown with -s or on failure: p50/p95 per action, peak RSS

    assert summary["errors"] == {}
    assert summary["server_errors"] == []
    assert {a: v["n"] for a, v in summary["latency_s"].items()} == {
        "sign in": SESSIONS, "risk sample": SESSIONS, "ecg sample": SESSIONS}
    loads = summary["weight_loads"]
    assert {key.split("/")[0] for key in loads} >= {"risk-chd", "ecg-rhythm"}
    assert all(count == 1 for count in loads.values()), f"a model was loaded more than once: {loads}"
    assert 0 < summary["peak_rss_mb"] < PEAK_RSS_BOUND_MB
