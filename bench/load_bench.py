"""Memory and time of /api/score under load: N large PNGs sent at once to a real server.

    .venv/bin/python bench/load_bench.py [--side 14000] [--requests 4] [--workers 2] [--queue 4]

Starts the app on a free loopback port with NIMA (weights from ../shared/weights),
sends ``--requests`` copies of a ``--side`` x ``--side`` PNG (flat colours: a small
file that decodes to side*side*3 bytes) at the same moment, and prints each answer's
status and time, the server's idle, peak (VmHWM) and settled (VmRSS) resident memory.
``--workers``/``--queue`` set server.scoring_workers / scoring_queue; ``--workers 99``
shows the server without the cap.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
from conftest import start_app, stop_app  # noqa: E402
from test_load import big_png, memory_mb  # noqa: E402

SHARED_WEIGHTS = Path(__file__).resolve().parent.parent.parent / "shared" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=14000)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="load-bench-"))
    env = {}
    for name, folder in (("WORKBENCH_DATA_DIR", "data"), ("WORKBENCH_MODELS_DIR", "runs"),
                         ("WORKBENCH_WEIGHTS_DIR", "weights"), ("WORKBENCH_CACHE_DIR", "cache")):
        (root / folder).mkdir()
        env[name] = str(root / folder)
    os.symlink(SHARED_WEIGHTS / "nima_mobilenet_aesthetic_ava.hdf5", root / "weights" / "nima_mobilenet_aesthetic_ava.hdf5")
    (root / "config.yaml").write_text(f"server:\n  scoring_workers: {args.workers}\n  scoring_queue: {args.queue}\n")
    env["WORKBENCH_CONFIG"] = str(root / "config.yaml")
    payload = big_png(args.side)
    print(f"{args.side}x{args.side} PNG: {len(payload) / 1024:.0f} KB on the wire, "
          f"{args.side ** 2 * 3 / 2**20:.0f} MB decoded; {args.requests} at once, "
          f"workers {args.workers}, queue {args.queue}")
    proc, url = start_app(env, root / "server.log")
    try:
        small = big_png(256)
        httpx.post(f"{url}/api/score", files=[("files", ("warm.png", small, "image/png"))], timeout=300)
        idle = memory_mb(proc.pid, "VmRSS")
        with open(f"/proc/{proc.pid}/clear_refs", "w") as fh:
            fh.write("5")
        answers = []

        def send(i):
            started = time.monotonic()
            r = httpx.post(f"{url}/api/score", files=[("files", (f"big{i}.png", payload, "image/png"))], timeout=900)
            answers.append((r.status_code, time.monotonic() - started, r.headers.get("retry-after")))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(args.requests)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        peak = memory_mb(proc.pid, "VmHWM")
        time.sleep(1)
        settled = memory_mb(proc.pid, "VmRSS")
    finally:
        stop_app(proc)
    for code, seconds, retry in sorted(answers, key=lambda a: a[1]):
        print(f"  {code}  {seconds:6.1f} s" + (f"  Retry-After {retry}" if retry else ""))
    print(f"wall {wall:.1f} s; RSS idle {idle:.0f} MB, peak {peak:.0f} MB (+{peak - idle:.0f}), "
          f"settled {settled:.0f} MB (+{settled - idle:.0f})")


if __name__ == "__main__":
    main()
