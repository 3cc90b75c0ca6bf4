"""Archives of many photos: the local engine against the Ray engine, a resume after a kill, and a
projection to 1, 4 and 16 nodes.

    .venv/bin/python bench/scale_bench.py [--n 10000] [--sections local_vs_ray,resume_after_kill,projection]

Photos: ``--n`` generated JPEGs (quality 90) at the sizes of real archives: long edge drawn from
1024, 1600, 2048 and 3000 px (web exports up to 6 MP), aspect 3:2 or 4:3, portrait or landscape,
each a different crop, tint and noise of the photos that ship with scikit-image and scikit-learn,
so every file's hash differs. Generated once into a temporary folder (``--keep DIR`` reuses one).

Scorer: a ridge run on efficientnet_lite0 features, trained first on 24 brightness crops (seconds);
what a person's own model is. Each engine runs in its own child process on a cold feature cache;
the parent samples the whole process tree from /proc every 0.25 s for peak RSS (the driver, the
largest worker, and all workers together: Ray's actors and tasks, the local engine's DataLoader).

Sections are functions in SECTIONS (each takes the shared context, returns Markdown lines); the
ONNX Runtime and start-up sections run (shortened) bench/cpu_path_bench.py and bench/startup_bench.py.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this tree's workbench, and the tests' photo helpers
SIZES = (1024, 1600, 2048, 3000)  # long edge, px
BATCH = 16  # features.batch_size: one Parquet part per batch


# ------------------------------------------------------------------ photos
def generate(n: int, folder: Path, seed: int = 0) -> float:
    """n distinct JPEGs at archive sizes; returns their mean megapixels."""
    from conftest import package_photos
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = list(package_photos().values())
    rng = np.random.default_rng(seed)
    pixels = 0
    for i in range(n):
        target = folder / f"photo_{i:06d}.jpg"
        long_edge = int(rng.choice(SIZES))
        short_edge = int(long_edge * (2 / 3 if rng.random() < 0.5 else 3 / 4))
        size = (long_edge, short_edge) if rng.random() < 0.7 else (short_edge, long_edge)
        pixels += size[0] * size[1]
        if target.exists():
            continue
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        side_h, side_w = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - side_h + 1), rng.integers(0, w - side_w + 1)
        crop = src[top:top + side_h, left:left + side_w, :3].astype(np.float32)
        crop = crop * rng.uniform(0.6, 1.1, size=3) + rng.normal(0, 4, size=crop.shape)
        image = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR)
        image.save(target, quality=90)
    return pixels / n / 1e6


def train_scorer(root: Path) -> tuple[str, dict[str, str]]:
    """A ridge run on efficientnet_lite0 in fresh folders; (run id, the env pointing at them)."""
    from conftest import package_photos
    from training_fixtures import make_brightness_set

    from workbench.config import load_settings
    from workbench.events import drain
    from workbench.training import train

    env = {"PYTHONPATH": str(ROOT), "WORKBENCH_DATA_DIR": str(root / "data"), "WORKBENCH_MODELS_DIR": str(root / "runs"),
           "WORKBENCH_WEIGHTS_DIR": str(root / "weights"), "WORKBENCH_CACHE_DIR": str(root / "cache")}
    for key, value in env.items():
        if key.startswith("WORKBENCH_"):
            Path(value).mkdir(parents=True, exist_ok=True)
    make_brightness_set(package_photos(), root / "data", n=24)
    run = drain(train("ridge", load_settings(data_dir=root / "data", models_dir=root / "runs",
                                             weights_dir=root / "weights", cache_dir=root / "cache")))
    return run.run_id, env


# ------------------------------------------------------------- measuring
def _tree(root_pid: int) -> dict[int, str]:
    """pid -> command line of root_pid and all its descendants."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                found.add(child)
                frontier.append(child)
    names = {}
    for pid in found:
        try:
            names[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            pass
    return names


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_child(args: list[str], env: dict[str, str], kill_when=None) -> dict:
    """Run this script as a child (``--child ...``), sampling its process tree's memory; returns the
    child's JSON plus wall time and peak RSS. ``kill_when()`` true: SIGKILL the whole tree then."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    driver_peak = worker_peak = workers_sum_peak = system_peak = 0.0
    killed = False
    while proc.poll() is None:
        tree = _tree(proc.pid)
        driver_peak = max(driver_peak, _rss_mb(proc.pid, "VmHWM"))
        workers = [pid for pid, cmd in tree.items() if pid != proc.pid and (cmd.startswith("ray::") or "python" in cmd
                                                                            and "ray/" not in cmd)]
        system = [pid for pid, cmd in tree.items() if pid != proc.pid and pid not in workers]
        worker_peak = max([worker_peak] + [_rss_mb(pid, "VmHWM") for pid in workers])
        workers_sum_peak = max(workers_sum_peak, sum(_rss_mb(pid) for pid in workers))
        system_peak = max(system_peak, sum(_rss_mb(pid) for pid in system))
        if kill_when is not None and not killed and kill_when():
            os.killpg(proc.pid, signal.SIGKILL)  # the driver, Ray's own processes and every worker at once
            killed = True
        time.sleep(0.25)
    out = proc.stdout.read()
    document = json.loads(out) if out.strip() and not killed else {}
    return {**document, "wall": time.perf_counter() - started, "killed": killed, "driver_peak_mb": driver_peak,
            "worker_peak_mb": worker_peak, "workers_sum_peak_mb": workers_sum_peak, "ray_system_mb": system_peak}


def child(kind: str, run_id: str, folder: str, out: str) -> None:
    """In the child process: one engine over the folder; prints a JSON document on stdout."""
    from workbench import compat  # noqa: F401

    # isort: split

    from workbench.config import load_settings
    from workbench.events import Finished, Notice, Progress

    settings = load_settings()
    marks: list[tuple[float, int]] = []
    started = time.perf_counter()
    if kind == "local":
        from workbench.predict import load_scorer, score_images, write_csv

        events = score_images([folder], load_scorer(run_id, settings), settings)
    else:
        from workbench.scale.ray_engine import ray_predict

        events = ray_predict(run_id, [folder], settings, out)
    result = None
    runtime = ""
    for event in events:
        if isinstance(event, Notice) and "computed by " in event.message:  # the local engine's runtime
            runtime = event.message.split("computed by ", 1)[1]
        if isinstance(event, Progress) and event.done:
            marks.append((time.perf_counter() - started, event.done))
        elif isinstance(event, Finished):
            result = event.result
    seconds = time.perf_counter() - started
    # steady rate: from the first tenth of the photos to the last one (start-up excluded)
    start = next((m for m in marks if m[1] >= marks[-1][1] / 10), marks[0]) if marks else (0, 0)
    steady = (marks[-1][1] - start[1]) / max(marks[-1][0] - start[0], 1e-9) if len(marks) > 1 else None
    document = {"seconds": seconds, "steady_img_s": steady, "runtime": runtime}
    if kind == "local":
        write_csv(result, out)
        Path(out + ".json").write_text(json.dumps({r.path: r.score for r in result.scored}))  # unrounded
        document.update(scored=len(result.scored), failed=len(result.failed))
    else:
        document.update(scored=result.new, failed=result.failed, skipped=result.skipped, rows=result.rows,
                        first_batch_s=result.first_batch_seconds, driver_s=result.driver_seconds,
                        resumed_parts=result.resumed_parts, runtime=result.runtime)
    print(json.dumps(document))


# --------------------------------------------------------------- sections
def _rss(r: dict) -> str:
    return (f"{r['driver_peak_mb']:.0f} MB / {r['worker_peak_mb']:.0f} MB / {r['workers_sum_peak_mb']:.0f} MB"
            + (f" (+{r['ray_system_mb']:.0f} MB Ray's own)" if r.get("ray_system_mb") else ""))


def local_vs_ray(ctx: dict) -> list[str]:
    n, tmp = ctx["n"], ctx["tmp"]
    local = run_child(["--child", "local", ctx["run_id"], str(ctx["photos"]), str(tmp / "local.csv")], ctx["env"])
    ray_run = run_child(["--child", "ray", ctx["run_id"], str(ctx["photos"]), str(tmp / "ray.parquet")], ctx["env"])
    ctx["local"], ctx["ray"] = local, ray_run
    import pyarrow.parquet as pq

    local_scores = json.loads((tmp / "local.csv.json").read_text())
    ray_scores = {r["path"]: r["score"] for r in pq.read_table(tmp / "ray.parquet").to_pylist() if r["score"] is not None}
    diff = max(abs(local_scores[p] - ray_scores[p]) for p in local_scores)
    lines = ["| engine | network runtime | photos scored | wall (incl. start-up) | img/s overall | img/s steady | "
             "peak RSS driver / largest worker / all workers |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in (("local (`score_images`)", local), ("Ray (`--engine ray`, local Ray, 2 CPUs)", ray_run)):
        lines.append(f"| {name} | {r.get('runtime') or '?'} | {r['scored']} | {r['wall']:.1f} s | {n / r['wall']:.1f} | "
                     f"{(r['steady_img_s'] or 0):.1f} | {_rss(r)} |")
    lines += ["", f"- Same answers: largest |Ray − local| score difference over the {len(local_scores)} photos: "
                  f"{diff:.2e} on the run's 0-100 scale.",
              f"- Ray start-up to the first batch written: {ray_run['first_batch_s']:.1f} s; the driver's own serial "
              f"work (listing, writing parts, merging): {ray_run['driver_s']:.2f} s, "
              f"{1000 * ray_run['driver_s'] / n:.2f} ms per photo."]
    return lines


def resume_after_kill(ctx: dict) -> list[str]:
    """Start a fresh Ray job, SIGKILL its whole process tree when about 40% of the photos are
    written, rerun the same command and time it to the end against a fresh run."""
    import pyarrow.parquet as pq

    n, tmp = ctx["n"], ctx["tmp"]
    out = tmp / "killed.parquet"
    parts = out.with_name(out.name + ".parts")

    def written() -> int:
        total = 0
        for part in parts.glob("part-*.parquet"):
            try:
                total += pq.read_metadata(part).num_rows
            except Exception:
                pass
        return total

    args = ["--child", "ray", ctx["run_id"], str(ctx["photos"]), str(out)]
    killed = run_child(args, ctx["env"], kill_when=lambda: written() >= 0.4 * n)
    kept = written()
    readable = all(pq.read_metadata(p).num_rows >= 0 for p in parts.glob("part-*.parquet"))
    resumed = run_child(args, ctx["env"])
    fresh = ctx.get("ray") or run_child(["--child", "ray", ctx["run_id"], str(ctx["photos"]), str(tmp / "fresh.parquet")],
                                        ctx["env"])
    rows = pq.read_table(out).num_rows
    return [
        "| run | wall | photos run through the model | skipped (hash already done) |",
        "| --- | --- | --- | --- |",
        f"| fresh run | {fresh['wall']:.1f} s | {fresh['scored']} | 0 |",
        f"| killed (SIGKILL to driver, Ray and workers at {kept} rows written) | {killed['wall']:.1f} s | - | - |",
        f"| rerun with the same `--out` | {resumed['wall']:.1f} s | {resumed['scored']} | {resumed['skipped']} |",
        "",
        f"- After the kill every part was readable Parquet ({'yes' if readable else 'NO'}); the rerun kept "
        f"{resumed['resumed_parts']} parts, ran the model on {resumed['scored']} photos and skipped {resumed['skipped']}: "
        f"{kept} + {resumed['scored']} = {kept + resumed['scored']} of {n} (photos in flight at the kill are the "
        f"difference, if any); `--out` holds {rows} rows.",
        f"- Time to finish after the kill: {resumed['wall']:.1f} s against {fresh['wall']:.1f} s for a fresh run "
        f"({100 * resumed['wall'] / fresh['wall']:.0f}%); the rerun hashes every photo again (that is how it knows "
        f"what is done) and pays Ray's start-up once more.",
    ]


def projection(ctx: dict) -> list[str]:
    """Nodes x actors x the measured per-actor rate, plus the driver's measured per-photo work and
    the measured start-up: time = start-up + P x driver per photo + P / (actors x per-actor rate)."""
    r = ctx.get("ray")
    if not r:
        return ["(needs local_vs_ray first)"]
    actors_here = 2  # one per core on this 2-core machine (see _workers in ray_engine)
    per_actor = (r["steady_img_s"] or ctx["n"] / r["wall"]) / actors_here
    per_photo_driver = r["driver_s"] / ctx["n"]
    start = r["first_batch_s"]
    lines = ["**PROJECTION, not a measurement**: built from this machine's measured per-actor rate "
             f"({per_actor:.1f} img/s per core-actor, read + decode + lite0 + ridge), the driver's measured serial "
             f"work ({1000 * per_photo_driver:.2f} ms per photo) and start-up ({start:.0f} s); it assumes nodes like "
             "this one or with 16 cores at the same per-core rate, photos on storage every node reads at full speed, "
             "and no other bottleneck. The driver's serial share caps the speed-up whatever the node count.", "",
             "| nodes | cores per node | model actors | 10^5 photos | 10^6 photos | img/s |", "| --- | --- | --- | --- | --- | --- |"]
    for cores in (2, 16):
        for nodes in (1, 4, 16):
            actors = nodes * cores
            rate = 1 / (per_photo_driver + 1 / (actors * per_actor))
            times = [start + p / rate for p in (1e5, 1e6)]
            lines.append(f"| {nodes} | {cores} | {actors} | {_hours(times[0])} | {_hours(times[1])} | {rate:.0f} |")
    return lines


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def cpu_path(ctx: dict) -> list[str]:
    """ONNX Runtime and OpenVINO against PyTorch eager, forward at batch 16 and end to end (bench/cpu_path_bench.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from cpu_path_bench import main as cpu_path_main

    report = cpu_path_main(["--backbones", "efficientnet_lite0,nima_mobilenet", "--repeats", "3",
                            "--images", "64", "--work-dir", str(ctx["tmp"] / "cpu_path"), "--json"])
    lines = ["| measure | backbone | eager img/s | onnxruntime img/s | openvino img/s | chosen / ratio |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in report["forward"]:
        lines.append(f"| forward | {row['backbone']} | {row['eager_img_s']} | {row.get('onnxruntime_img_s', '-')} | "
                     f"{row.get('openvino_img_s', '-')} | {row.get('chosen')} / ×{row.get('best_ratio', '-')} |")
    for row in report["end_to_end"]:
        lines.append(f"| end to end | {row['backbone']} | {row['eager_img_s']} | auto: {row['onnx_img_s']} | | "
                     f"{row['runtime'].split()[0]} / ×{row['ratio']} |")
    return lines


def start_up(ctx: dict) -> list[str]:
    """Whole-process start-up times against the base commit (bench/startup_bench.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from startup_bench import rows as startup_rows

    lines = ["| measurement | base s | this s | ratio | base CPU s | this CPU s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in startup_rows(repeats=5, app_repeats=3):
        lines.append(f"| {r['measurement']} | {r['base_s']} | {r['this_s']} | ×{r['ratio']} | "
                     f"{r['base_cpu_s']} | {r['this_cpu_s']} |")
    return lines


# The report's sections, in order (each takes ``ctx`` and returns Markdown lines).
SECTIONS = [local_vs_ray, resume_after_kill, projection, cpu_path, start_up]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="generated photos (default 10,000)")
    parser.add_argument("--keep", type=Path, help="generate the photos into (or reuse them from) this folder")
    parser.add_argument("--sections", default=",".join(f.__name__ for f in SECTIONS))
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "RUN", "FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp_name:
        tmp = Path(tmp_name)
        photos = args.keep or tmp / "photos"
        started = time.perf_counter()
        megapixels = generate(args.n, photos)
        print(f"{args.n} photos, mean {megapixels:.1f} MP, generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        run_id, env = train_scorer(tmp / "wb")
        ctx = {"n": args.n, "tmp": tmp, "photos": photos, "run_id": run_id, "env": env, "megapixels": megapixels}
        print(f"`--n {args.n}`: {args.n} JPEGs, mean {megapixels:.1f} MP (long edge {', '.join(map(str, SIZES))} px); "
              f"scorer: ridge on efficientnet_lite0; machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start.\n")
        chosen = args.sections.split(",")
        for section in SECTIONS:
            if section.__name__ in chosen:
                print(f"### {section.__name__}\n")
                print("\n".join(section(ctx)) + "\n", flush=True)


if __name__ == "__main__":
    main()
