"""Memory under load: large photos sent at once are scored a few at a time, the rest
wait or get a clear 503 with Retry-After, and memory is given back afterwards."""
from __future__ import annotations

import io
import os
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import start_app, stop_app
from PIL import Image

SIDE = 6000  # 36 megapixels: ~108 MB decoded as RGB, a ~100 KB PNG on the wire
# The server's peak resident memory may grow by at most this much over its idle size while four
# such photos arrive at once. Uncapped, four decodes (each checked, then scored) run side by side.
PEAK_BUDGET_MB = 600
SETTLED_BUDGET_MB = 200  # and once they are done, memory goes back to within this of the idle size


def big_png(side: int = SIDE) -> bytes:
    pixels = np.zeros((side, side, 3), dtype=np.uint8)
    pixels[:, : side // 2] = (200, 120, 40)  # flat areas: the file stays small, the decode does not
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def memory_mb(pid: int, field: str) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} missing from /proc/{pid}/status")


@pytest.fixture
def loaded_server(workbench_env, nima_weights, tmp_path, output_dir):
    os.symlink(nima_weights, os.path.join(workbench_env["WORKBENCH_WEIGHTS_DIR"], nima_weights.name))
    config = tmp_path / "gate.yaml"
    config.write_text("server:\n  scoring_workers: 1\n  scoring_queue: 2\n")
    proc, url = start_app({**workbench_env, "WORKBENCH_CONFIG": str(config)}, output_dir / "server.log")
    try:
        yield proc.pid, url
    finally:
        stop_app(proc)


def test_four_large_photos_at_once_stay_within_the_memory_budget(loaded_server):
    pid, url = loaded_server
    small = io.BytesIO()
    Image.new("RGB", (300, 200), (90, 90, 90)).save(small, format="JPEG")
    warm = httpx.post(f"{url}/api/score", files=[("files", ("warm.jpg", small.getvalue(), "image/jpeg"))], timeout=120)
    assert warm.status_code == 200, warm.text  # NIMA loaded: what follows is the photos' cost
    idle = memory_mb(pid, "VmRSS")
    with open(f"/proc/{pid}/clear_refs", "w") as fh:  # restart the peak counter (VmHWM) from here
        fh.write("5")
    payload = big_png()
    answers: list[httpx.Response] = []

    def send(i: int) -> None:
        answers.append(httpx.post(f"{url}/api/score", files=[("files", (f"big{i}.png", payload, "image/png"))],
                                  timeout=300))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = memory_mb(pid, "VmHWM")
    time.sleep(0.5)
    settled = memory_mb(pid, "VmRSS")
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {200, 503} and 200 in codes, [a.text[:300] for a in answers]
    for busy in (a for a in answers if a.status_code == 503):
        assert int(busy.headers["Retry-After"]) >= 1 and "busy" in busy.json()["detail"]
    print(f"idle {idle:.0f} MB, peak {peak:.0f} MB, settled {settled:.0f} MB, answers {codes}")
    assert peak - idle < PEAK_BUDGET_MB, (idle, peak)
    assert settled - idle < SETTLED_BUDGET_MB, (idle, settled)


def test_the_gate_admits_workers_plus_queue_and_refuses_the_next_with_retry_after():
    from fastapi import HTTPException

    from workbench.api import ScoringGate

    gate = ScoringGate(workers=1, queue=2)
    release, inside = threading.Event(), []

    def hold():
        with gate.enter():
            inside.append(1)
            release.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while gate._admitted < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(inside) == 1  # one scores, two wait
    with pytest.raises(HTTPException) as refused:
        with gate.enter():
            pass
    assert refused.value.status_code == 503 and int(refused.value.headers["Retry-After"]) >= 1
    release.set()
    for t in threads:
        t.join()
    assert len(inside) == 3 and gate._admitted == 0
    with gate.enter():  # free again
        pass
