"""The bench harness itself works: it starts, measures S1 and a tiny S2, writes its report;
and its targets are judged as issue 8 part 5 sets them. A tiny S8 (instant triggers) counts
every delivery, and its poll rounds are told apart as bench/events.py says.

No measured figure is asserted: timing on shared machines is noise (make bench measures).
"""

import json
import subprocess
import sys

import pytest

from bench.events import SMOKE_LAYOUTS, SMOKE_MESSAGES, SMOKE_SUBSCRIPTIONS, rounds_of
from bench.run import S2_MIN_WINDOW_S, targets
from tests.support.servers import ROOT

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tools", [[], ["--no-nginx", "--no-wrk"]], ids=["default", "fallbacks"])
def test_the_bench_harness_runs_and_writes_its_report(tmp_path, tools):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), *tools],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True
    s1 = report["results"]["S1"]
    assert s1["connector"]["requests"] > 0 and s1["floor"]["requests"] > 0
    assert s1["connector"]["errors"] == 0
    assert s1["ratio_to_floor"] > 0
    for kind in ("target", "reported"):
        s2 = report["results"]["S2"][kind]
        run_ = s2["runs"][0]
        # Answers are counted only inside the window, never before the upstream's first delay.
        assert 0 < s2["window_answers"] <= sum(run_["per_second"])
        assert s2["window_rps"] == round(s2["window_answers"] / s2["window_s"], 1)
        assert s2["measured_rps"] == min(s2["window_rps"], s2["little_rps"])
        assert s2["skip_s"] == s2["delay_s"]
        assert s2["errors_all_runs"] == 0
        assert s2["share_of_ideal"] > 0
    names = {row["target"] for row in report["targets"]}
    assert "S1 req/s ratio to the floor" in names
    assert any(name.startswith("S2 16 connections") for name in names)
    if tools:
        assert "python" in report["tools"]["upstream"] and "python" in report["tools"]["load"]
    assert "S1 mix" in run.stdout and "(target, " in run.stdout and "(reported, " in run.stdout
    # A smoke window is far shorter than 30 s, so the S2 target can never be met by it.
    assert "[NOT met] S2 16 connections" in run.stdout


def s2_result(share=0.96, window=30.0, errors=0):
    return {
        "target": {
            "connections": 1024,
            "delay_s": 1.0,
            "window_s": window,
            "ideal_rps": 1024.0,
            "share_of_ideal": share,
            "errors_all_runs": errors,
        }
    }


def rows(results):
    return {row["target"]: row["met"] for row in targets(results)}


@pytest.mark.parametrize(
    ("results", "target", "met"),
    [
        ({"S1": {"ratio_to_floor": 0.6, "floor": {"rps": 2600}}}, "S1 req/s", True),
        ({"S1": {"ratio_to_floor": 0.59, "floor": {"rps": 2600}}}, "S1 req/s", False),
        ({"S2": s2_result(share=0.95)}, "S2 1024 connections, 1 s upstream: share", True),
        ({"S2": s2_result(share=0.949)}, "S2 1024 connections, 1 s upstream: share", False),
        (
            {"S2": s2_result(share=1.0, window=S2_MIN_WINDOW_S - 1)},
            "S2 1024 connections, 1 s upstream: share",
            False,
        ),
        ({"S2": s2_result(errors=0)}, "S2 1024 connections, 1 s upstream: errors", True),
        ({"S2": s2_result(errors=1)}, "S2 1024 connections, 1 s upstream: errors", False),
        ({"S3": {w: {"rss_growth_mb": 31.9} for w in ("download", "upload")}}, "S3 up", True),
        ({"S3": {w: {"rss_growth_mb": 32} for w in ("download", "upload")}}, "S3 up", False),
        ({"S4": {"seconds": 0.99}}, "S4", True),
        ({"S4": {"seconds": 1.0}}, "S4", False),
        ({"S5": {"added_p50_ms": 1.5, "direct": {"p50_ms": 0.04}}}, "S5 added p50", True),
        ({"S5": {"added_p50_ms": 1.51, "direct": {"p50_ms": 0.04}}}, "S5 added p50", False),
    ],
)
def test_each_target_is_judged_at_its_threshold(results, target, met):
    found = {name: ok for name, ok in rows(results).items() if name.startswith(target)}
    assert list(found.values()) == [met], found


def test_s1_p99_is_reported_but_no_longer_a_target():
    results = {"S1": {"ratio_to_floor": 1.0, "floor": {"rps": 2600, "p99_ms": 9}}}
    assert list(rows(results)) == ["S1 req/s ratio to the floor"]


def test_the_in_process_measure_runs_the_mix_and_reports_cpu_per_call():
    done = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "--rounds", "2", "--calls", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["rounds"]) == 2 and report["cpu_us_per_call_min"] > 0


def test_a_tiny_s8_delivers_each_message_once_to_each_subscription_of_its_client(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--only", "S8", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    s8 = json.loads(out.read_text())["results"]["S8"]
    (latency,) = s8["latency"].values()
    expected = SMOKE_MESSAGES * SMOKE_SUBSCRIPTIONS
    counts = {k: latency[k] for k in ("published", "expected", "delivered", "duplicates")}
    counts.update({k: latency[k] for k in ("missing", "strays", "unverified")})
    assert counts == {
        "published": SMOKE_MESSAGES,
        "expected": expected,
        "delivered": expected,
        "duplicates": 0,
        "missing": 0,
        "strays": 0,
        "unverified": 0,
    }
    assert set(s8["polls"]) == set(SMOKE_LAYOUTS)
    assert all(layout["polls"] > 0 for layout in s8["polls"].values())
    assert "S8 poll" in run.stdout and "duplicates 0, missing 0" in run.stdout


#: (time, counter) samples of a watcher polling 3 clients each second, read every 0.1 s.
STEADY = [(t / 10, 3 * ((t + 5) // 10)) for t in range(46)]


@pytest.mark.parametrize(
    ("samples", "rounds", "per_round", "per_minute"),
    [
        # Rounds at 0.5, 1.5, 2.5, 3.5, 4.5 s: the first and last may be cut; 3 whole ones.
        (STEADY, 3, [3], 180.0),
        # A round whose polls straddle two samples is still one round.
        (
            [(0.0, 0), (0.5, 2), (1.0, 2), (1.5, 4), (1.6, 6), (2.0, 6), (2.5, 8), (3.5, 10)],
            2,
            [2, 4],
            180.0,
        ),
        # A window where one subscription's client is read alone: one poll a round.
        ([(t / 10, (t + 5) // 10) for t in range(46)], 3, [1], 60.0),
    ],
    ids=["steady", "straddling", "one-client"],
)
def test_poll_rounds_are_counted_whole(samples, rounds, per_round, per_minute):
    counted = rounds_of(samples, interval=1.0)
    assert counted["rounds"] == rounds
    assert counted["polls_per_round"] == per_round
    assert counted["polls_per_minute"] == pytest.approx(per_minute, rel=0.01)


def test_too_few_poll_rounds_to_count_is_said():
    with pytest.raises(RuntimeError, match="too few"):
        rounds_of([(0.0, 0), (0.5, 3), (1.5, 6)], interval=1.0)
