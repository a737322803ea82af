"""Restart backoff and crash-loop detection."""

from __future__ import annotations

from stethoscope.sources.run.lifecycle import RestartTracker, exit_event


def tracker(**overrides: float) -> RestartTracker:
    settings = {
        "initial_s": 1.0,
        "max_s": 8.0,
        "reset_after_s": 60.0,
        "loop_restarts": 3,
        "loop_window_s": 300.0,
    }
    settings.update(overrides)
    return RestartTracker(**settings)  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_maximum() -> None:
    restarts = tracker()
    assert [restarts.next_delay(0.1) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert restarts.count == 6


def test_backoff_starts_over_after_a_long_enough_run() -> None:
    restarts = tracker()
    for _ in range(3):
        restarts.next_delay(0.1)
    assert restarts.next_delay(61.0) == 1.0


def test_crash_loop_is_reported_once_when_the_threshold_is_reached() -> None:
    restarts = tracker()
    seen = []
    for _ in range(5):
        restarts.next_delay(0.1)
        seen.append(restarts.entered_crash_loop())
    assert seen == [False, False, True, False, False]


def test_restarts_spread_over_more_than_the_window_are_no_crash_loop() -> None:
    restarts = tracker(loop_window_s=1e-9)
    for _ in range(4):
        restarts.next_delay(0.1)
        assert not restarts.entered_crash_loop()


def test_exit_by_signal_is_an_error_naming_the_signal() -> None:
    record = exit_event(pid=7, returncode=-9, run_seconds=1.5, stderr_tail=["boom"])
    attributes = {kv.key: kv.value for kv in record.attributes}
    assert attributes["process.exit.signal"].string_value == "SIGKILL"
    assert "process.exit.code" not in attributes
    assert attributes["process.stderr_tail"].string_value == "boom"
    assert record.severity_text == "ERROR"
