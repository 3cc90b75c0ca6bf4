"""The small pieces every long job is built from: relaying a sub-job, the default stop flag."""
from __future__ import annotations

import pytest

from workbench.events import NEVER_STOP, Finished, Notice, Progress, StopFlag, drain, relay


def test_relay_passes_the_events_on_and_returns_the_finished_one():
    tidied = []

    def sub():
        yield Progress(1, 2)
        yield Notice("half way")
        yield Finished("result")
        tidied.append(True)  # work after Finished still runs

    def outer():
        finished = yield from relay(sub())
        yield Finished(finished.result.upper(), finished.stopped)

    events = list(outer())
    assert [type(e) for e in events] == [Progress, Notice, Finished]
    assert events[-1] == Finished("RESULT", False)
    assert tidied == [True]
    assert drain(outer()) == "RESULT"


def test_the_default_stop_flag_is_never_set_and_refuses_to_be():
    assert not NEVER_STOP.is_set()
    with pytest.raises(RuntimeError, match="own StopFlag"):
        NEVER_STOP.set()
    assert not NEVER_STOP.is_set()
    own = StopFlag()
    own.set()
    assert own.is_set()
