"""connector/logs.py: a library's line repeated in a loop is written once in a while."""

import logging

from connector import logs


def line(text: str) -> logging.LogRecord:
    return logging.LogRecord("huey", logging.ERROR, __file__, 1, text, (), None)


def test_a_repeated_line_is_written_once_per_interval_with_how_many_were_left_out(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 2.5, 5.5, 7.1])
    monkeypatch.setattr(logs.time, "monotonic", lambda: next(clock))
    repeats = logs.Repeats(every=5.0)
    written = [
        repeats.filter(line("Error reading from queue")),  # 0.0: the first
        repeats.filter(line("Error reading from queue")),  # 1.0: left out
        repeats.filter(line("another failure")),  # 2.0: another text is its own
        repeats.filter(line("Error reading from queue")),  # 2.5: left out
        repeats.filter(again := line("Error reading from queue")),  # 5.5: written, counted
        repeats.filter(line("another failure")),  # 7.1: written, nothing left out
    ]
    assert written == [True, False, True, False, True, True]
    assert again.fields == {"repeated": 2}


def test_it_remembers_a_bounded_number_of_texts():
    repeats = logs.Repeats(every=60.0)
    for n in range(logs.REPEATS_KEPT * 3):
        assert repeats.filter(line(f"failure {n}"))
    assert len(repeats.seen) <= logs.REPEATS_KEPT + 1
