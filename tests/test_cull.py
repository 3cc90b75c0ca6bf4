"""Culling a real (synthetic) shoot: groups, flags, picks, and acting on them on disk."""
from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cull_fixtures import make_shoot, pairwise_precision_recall
from PIL import Image

from workbench.config import load_settings
from workbench.cull import (
    TIE,
    CullError,
    CullOptions,
    copy_photos,
    cull,
    group_photos,
    laplacian_sharpness,
    reflag,
    send_to_training,
    write_cull_xmp,
)
from workbench.dataset.store import ScoreStore
from workbench.dataset.xmp import write_rating
from workbench.events import Finished, Progress, StopFlag, drain
from workbench.predict import NIMA_ID, load_scorer


@pytest.fixture(scope="module")
def culled(tmp_path_factory, savoias_dir, nima_weights):
    """One small shoot (4 sources -> bursts and singletons, 300 px) culled once with NIMA."""
    root = tmp_path_factory.mktemp("cull")
    sources = sorted((savoias_dir / "images").glob("*.jpg"))
    random.Random(3).shuffle(sources)
    shoot = make_shoot(sources[:5], root / "shoot", seed=2, long_side=300, burst_share=0.7, burst_sizes=(3, 4))
    with pytest.MonkeyPatch.context() as mp:
        for name in ("data", "runs", "cache"):
            (root / name).mkdir()
        mp.setenv("WORKBENCH_DATA_DIR", str(root / "data"))
        mp.setenv("WORKBENCH_MODELS_DIR", str(root / "runs"))
        mp.setenv("WORKBENCH_CACHE_DIR", str(root / "cache"))
        mp.setenv("WORKBENCH_WEIGHTS_DIR", str(nima_weights.parent))
        settings = load_settings()
    scorer = load_scorer(NIMA_ID, settings)
    events = list(cull([shoot.folder], scorer, settings))
    return shoot, events, settings, scorer


def _result(culled):
    return culled[1][-1].result


def test_groups_and_picks_on_a_synthetic_shoot(culled):
    shoot, events, _, _ = culled
    result = _result(culled)
    assert len(shoot.blurred) >= 1 and any(len(g) == 1 for g in shoot.groups)  # the shoot has what we test
    found = [[p.path for p in g.photos] for g in result.groups]
    assert pairwise_precision_recall(shoot.groups, found) == (1.0, 1.0)
    assert any(isinstance(e, Progress) for e in events) and not result.stopped
    for group in result.groups:
        scores = [p.score for p in group.photos]
        assert scores == sorted(scores, reverse=True)  # best first
        unflagged = [p for p in group.photos if not p.flagged]
        assert [p.path for p in group.photos if p.status == "pick"] == [u.path for u in unflagged[:1]]
    by_path = {p.path: p for p in result.photos}
    for path in shoot.blurred:  # every blurred frame is flagged, shown, and rejected; none of its siblings is
        assert by_path[str(path)].flags["out_of_focus"]["flagged"] and by_path[str(path)].status == "reject"
    assert not any(by_path[str(p)].flags["out_of_focus"]["flagged"] for p in shoot.sharp_siblings)
    assert sorted(result.picks) == sorted(g.pick.path for g in result.groups if g.pick)
    document = json.loads(json.dumps(result.to_json()))
    assert document["n_photos"] == sum(len(g) for g in shoot.groups)
    assert {"id", "photos"} <= set(document["groups"][0])
    assert {"path", "score", "flags", "pick"} <= set(document["groups"][0]["photos"][0])
    assert "closed_eyes" in document["unavailable_flags"]


def test_thresholds_change_flags_without_dropping_photos(culled):
    result = _result(culled)
    n = len(result.photos)
    reflag(result, CullOptions(blur_threshold=1e9))  # everything "blurred": all flagged, none dropped, no picks
    assert len(result.photos) == n and not result.picks and len(result.rejected) == n
    reflag(result, CullOptions())
    assert len(result.picks) == sum(any(not p.flagged for p in g.photos) for g in result.groups) > 0
    with pytest.raises(CullError, match="similarity"):
        CullOptions(similarity=1.5).check()


def test_the_person_overrides_a_pick(culled):
    result = _result(culled)
    group = next(g for g in result.groups if len(g.photos) > 1)
    first, second = group.photos[0], group.photos[1]
    result.set_status(first.path, "none")
    result.set_status(second.path, "pick")
    result.set_stars(second.path, 5)
    assert group.pick is second and second.path in result.picks and first.path not in result.picks
    with pytest.raises(CullError):
        result.set_status(first.path, "maybe")
    result.set_status(first.path, "pick")  # put back for the other tests
    result.set_status(second.path, "none" if not second.flagged else "reject")
    result.set_stars(second.path, None)


def test_grouping_rule_time_runs_and_duplicates():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 64))
    x = np.stack([a, a + 0.5 * rng.normal(size=64), b, c, c + 0.01])  # cos(0, 1) ~ 0.9, unrelated ones ~ 0
    # 0,1: a burst 0.5 s apart; 2: another scene 0.5 s later (unlike); 3 and 4 identical but 1 h apart
    taken = [0.0, 0.5, 1.0, 100.0, 3700.0]
    groups = sorted(sorted(g) for g in group_photos(x, taken, CullOptions(burst_similarity=0.7, similarity=0.999)))
    assert [0, 1] in groups and [2] in groups and [3, 4] in groups
    # no capture time at all: only content links
    assert sorted(map(sorted, group_photos(x, [None] * 5, CullOptions(similarity=0.999)))) == [[0], [1], [2], [3, 4]]


def test_grouping_rule_layouts_link_blurred_frames_and_gate_feature_links():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 64))
    la, lb = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 256)))
    x = np.stack([a, rng.normal(size=64), a + 0.6 * b, b])  # 1: a's blurred frame (features unlike a's)
    layouts = [la, la + 0.05 * lb, lb, lb]                   # 2: features like a's, layout of another scene
    layouts = [v / np.linalg.norm(v) for v in layouts]
    taken = [0.0, 0.4, 0.8, 1.2]
    options = CullOptions(similarity=0.999)
    assert float(x[0] @ x[2]) / np.linalg.norm(x[0]) / np.linalg.norm(x[2]) >= options.burst_similarity
    assert sorted(map(sorted, group_photos(x, taken, options))) == [[0, 2, 3], [1]]  # features alone
    assert sorted(map(sorted, group_photos(x, taken, options, layouts=layouts))) == [[0, 1], [2, 3]]
    # without capture times: neighbours in natural name order (IMG_9 before IMG_10), by layout alone
    names = ["IMG_9.jpg", "IMG_10.jpg", "IMG_11.jpg", "IMG_12.jpg"]
    assert sorted(map(sorted, group_photos(x, [None] * 4, options, layouts=layouts, names=names))) == [[0, 1], [2, 3]]
    far = [layouts[0], layouts[2], layouts[3], layouts[1]]  # the blurred frame 3 names after its sharp one
    assert [0, 3] not in map(sorted, group_photos(x, [None] * 4, options, layouts=far, names=names))


def test_sharpness_does_not_depend_on_exposure():
    rng = np.random.default_rng(1)
    luma = rng.random((200, 300)).astype(np.float32) * 0.5
    assert laplacian_sharpness(luma) == pytest.approx(laplacian_sharpness(luma * 0.5 + 0.1), rel=1e-4)


def test_a_tie_in_score_goes_to_the_larger_photo_then_the_file_name(culled, savoias_dir, tmp_path):
    """A photo and its half-size copy that NIMA scores the same (its nearest-neighbour resize to 224 px
    sees the same pixels in both): the pick is the larger photo, though the copy's name sorts first."""
    _, _, settings, scorer = culled
    folder = tmp_path / "ties"
    folder.mkdir()
    first, second = sorted((savoias_dir / "images").glob("*.jpg"))[:2]
    for source, stem in ((first, "IMG_7"), (second, "IMG_8")):
        with Image.open(source) as image:  # 224 px blocks: both sizes resize back to exactly these pixels
            base = image.convert("RGB").resize((224, 224), Image.Resampling.LANCZOS)
        if stem == "IMG_7":
            base.resize((896, 896), Image.Resampling.NEAREST).save(folder / "IMG_7.png")
            base.resize((448, 448), Image.Resampling.NEAREST).save(folder / "IMG_7-web.png")
        else:  # the same size twice: the file name decides
            for name in ("IMG_8.png", "IMG_8 copy.png"):
                base.resize((448, 448), Image.Resampling.NEAREST).save(folder / name)
    result = drain(cull([folder], scorer, settings))
    groups = {Path(g.photos[0].path).stem.split(" ")[0].split("-")[0]: g for g in result.groups}
    assert sorted(len(g.photos) for g in result.groups) == [2, 2]
    big, small = groups["IMG_7"].photos
    assert abs(big.score - small.score) <= TIE * (scorer.scale[1] - scorer.scale[0])  # the tie this is about
    assert (Path(big.path).name, big.status, small.status) == ("IMG_7.png", "pick", "none")
    assert big.pixels == 4 * small.pixels
    assert [Path(p.path).name for p in groups["IMG_8"].photos] == ["IMG_8 copy.png", "IMG_8.png"]
    assert groups["IMG_8"].pick.path.endswith("IMG_8 copy.png")


@pytest.mark.parametrize("with_exif", [True, False], ids=["burst-times", "no-exif-name-order"])
def test_a_heavily_blurred_copy_joins_its_burst_and_loses_to_the_sharp_frame(culled, savoias_dir, tmp_path, with_exif):
    """A photo, a near copy, a copy blurred by a Gaussian of 4 % of its long side (its features' cosine to
    the sharp frames falls to ~0.2, far below the burst bar) and an unrelated photo taken right after:
    the blurred copy joins the sharp frames by its 16x16 layout and is rejected there, the sharp frame is
    picked, and the unrelated photo, though in the same burst run (or next in name order), stays alone."""
    from datetime import timedelta

    from cull_fixtures import START, _exif
    from PIL import ImageEnhance, ImageFilter

    _, _, settings, scorer = culled
    folder = tmp_path / "burst"
    folder.mkdir()
    images = sorted((savoias_dir / "images").glob("*.jpg"))
    with Image.open(images[3]) as image:
        sharp = image.convert("RGB").resize((600, 400), Image.Resampling.LANCZOS)
    with Image.open(images[40]) as image:
        other = image.convert("RGB").resize((600, 400), Image.Resampling.LANCZOS)
    near = ImageEnhance.Brightness(sharp.crop((12, 8, 588, 392)).resize((600, 400))).enhance(1.1)
    blurred = sharp.filter(ImageFilter.GaussianBlur(radius=0.04 * 600))
    frames = {"IMG_8.jpg": sharp, "IMG_9.jpg": near, "IMG_10.jpg": blurred, "IMG_11.jpg": other}
    for k, (name, frame) in enumerate(frames.items()):  # 0.4 s apart, or no capture time at all
        frame.save(folder / name, quality=90, **({"exif": _exif(START + timedelta(seconds=0.4 * k))} if with_exif else {}))
    result = drain(cull([folder], scorer, settings))
    by_name = {Path(p.path).name: (g, p) for g in result.groups for p in g.photos}
    group, _ = by_name["IMG_8.jpg"]
    assert sorted(Path(p.path).name for p in group.photos) == ["IMG_10.jpg", "IMG_8.jpg", "IMG_9.jpg"]
    assert len(by_name["IMG_11.jpg"][0].photos) == 1
    soft = by_name["IMG_10.jpg"][1]
    assert soft.flags["out_of_focus"]["flagged"] and soft.status == "reject"
    assert Path(group.pick.path).name in ("IMG_8.jpg", "IMG_9.jpg")


def test_copy_never_overwrites_and_move_keeps_one_whole_copy(culled, tmp_path):
    result = _result(culled)
    picks = result.picks
    dest = tmp_path / "keepers"
    dest.mkdir()
    clash = dest / Path(picks[0]).name
    clash.write_bytes(b"someone else's photo")
    report = drain(copy_photos(picks, dest))
    assert clash.read_bytes() == b"someone else's photo"  # untouched
    renamed = Path(report.copied[picks[0]])
    assert renamed.name.endswith(" (1).jpg") and renamed.read_bytes() == Path(picks[0]).read_bytes()
    assert all(Path(p).is_file() for p in picks)  # a copy leaves the originals
    # a move, stopped after the first photo: each photo is where it was or fully moved, never half
    source = tmp_path / "src"
    shutil.copytree(Path(picks[0]).parent, source)
    names = [Path(p).name for p in picks]
    originals = {n: (source / n).read_bytes() for n in names}
    sidecar = source / (Path(names[0]).stem + ".xmp")
    write_rating(source / names[0], 5)  # a sidecar moves along with its photo
    stop = StopFlag()
    moved_dest = tmp_path / "moved"
    for event in copy_photos([source / n for n in names], moved_dest, move=True, stop=stop):
        if isinstance(event, Progress):
            stop.set()
        if isinstance(event, Finished):
            report = event.result
    assert report.stopped and len(report.copied) == 1
    for n in names:
        here, there = source / n, moved_dest / n
        assert here.is_file() != there.is_file()
        assert (here if here.is_file() else there).read_bytes() == originals[n]
    assert not sidecar.exists() and (moved_dest / sidecar.name).is_file()
    assert not [p for p in moved_dest.iterdir() if p.name not in names + [sidecar.name]]  # no temp files left


def test_a_stopped_cull_keeps_what_was_done(culled):
    shoot, _, settings, scorer = culled
    stop = StopFlag()
    finished = None
    for event in cull([shoot.folder], scorer, settings, stop=stop):
        if isinstance(event, Progress) and "focus" in event.message:
            stop.set()
        if isinstance(event, Finished):
            finished = event
    assert finished.stopped and finished.result.stopped
    assert all(Path(p).is_file() for g in shoot.groups for p in g)


def test_xmp_picks_read_back_by_exiftool(culled, tmp_path):
    shoot, _, settings, scorer = culled
    folder = tmp_path / "shoot"
    shutil.copytree(shoot.folder, folder, ignore=shutil.ignore_patterns("*.xmp"))
    result = drain(cull([folder], scorer, settings))
    reject = result.rejected[0]
    pick = result.picks[0]
    result.set_stars(pick, 5)
    out = write_cull_xmp(result)
    assert not out["failed"]
    proc = subprocess.run(["exiftool", "-j", "-XMP-xmp:Rating", "-XMP-xmpDM:Pick",
                           str(Path(pick).with_suffix(".xmp")), str(Path(reject).with_suffix(".xmp"))],
                          capture_output=True, text=True, check=True)
    read = {Path(d["SourceFile"]).stem: d for d in json.loads(proc.stdout)}
    assert read[Path(pick).stem]["Rating"] == 5 and read[Path(pick).stem]["Pick"] == 1
    assert read[Path(reject).stem]["Rating"] == -1 and read[Path(reject).stem]["Pick"] == -1


def test_chosen_photos_go_into_the_training_set_with_corrected_scores(culled):
    _, _, settings, _ = culled
    result = _result(culled)
    chosen = [(result.picks[0], 91.0), (result.rejected[0], 12.5)]
    report = drain(send_to_training(chosen, settings))
    assert report is not None
    scores = sorted(e.score for e in ScoreStore.from_settings(settings).entries())
    assert scores == [12.5, 91.0]
    drain(send_to_training(chosen, settings))  # sent twice: not copied twice
    assert len(ScoreStore.from_settings(settings).entries()) == 2


def test_cli_contract(culled, run_cli, workbench_env, tmp_path, nima_weights):
    shoot, _, _, _ = culled
    folder = tmp_path / "shoot"
    shutil.copytree(shoot.folder, folder, ignore=shutil.ignore_patterns("*.xmp"))
    (Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name).symlink_to(nima_weights)
    proc = run_cli("cull", "nima", str(folder), "--json", "--copy-picks", str(tmp_path / "picks"), "--write-xmp",
                   "--csv", str(tmp_path / "cull.csv"))
    document = json.loads(proc.stdout)
    assert set(document) >= {"scorer", "n_photos", "groups", "picks", "rejected", "copied_picks", "xmp"}
    assert document["scorer"] == "nima" and document["n_photos"] == sum(len(g) for g in shoot.groups)
    assert len(document["groups"]) == len(shoot.groups)
    copied = sorted(p.name for p in (tmp_path / "picks").glob("*.jpg"))
    assert copied == sorted(Path(p).name for p in document["picks"])
    assert sorted(p.stem for p in (tmp_path / "picks").glob("*.xmp")) == [Path(n).stem for n in copied]  # along
    assert len(list(folder.glob("*.xmp"))) == document["n_photos"]
    header, *rows = (tmp_path / "cull.csv").read_text().splitlines()
    assert header.split(",")[:4] == ["path", "score", "group", "status"] and "out_of_focus" in header.split(",")
    assert len(rows) == document["n_photos"]
    bad = run_cli("cull", "nima", str(folder), "--similarity", "2", "--json", check=False)
    assert bad.returncode == 2 and "similarity" in json.loads(bad.stdout)["error"]


def test_cli_names_skipped_files_in_its_report_not_as_warning_lines(run_cli, workbench_env, savoias_dir, tmp_path,
                                                                     nima_weights):
    """A broken JPEG and a text file: each is named once with its reason in the summary line and in the CSV,
    and no warning line about skipped files sits beside the report."""
    (Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name).symlink_to(nima_weights)
    folder = tmp_path / "shoot"
    folder.mkdir()
    for k, source in enumerate(sorted((savoias_dir / "images").glob("*.jpg"))[:2]):
        with Image.open(source) as image:
            image.convert("RGB").resize((320, 240)).save(folder / f"IMG_{k}.jpg", quality=90)
    (folder / "broken.jpg").write_bytes((folder / "IMG_0.jpg").read_bytes()[:2000])  # cut short
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    proc = run_cli("cull", "nima", str(folder), str(notes), "--csv", str(tmp_path / "cull.csv"))
    lines = [line.strip() for line in proc.stderr.replace("\r", "\n").splitlines()]
    assert not [line for line in lines if line.startswith("WARNING") and ("skipped" in line or "could not" in line)]
    summary = next(line for line in lines if line.startswith("2 photos in"))
    assert "2 files skipped: broken.jpg (the file is truncated), notes.txt (not an image" in summary
    assert summary.count("broken.jpg") == 1 and "failed" not in summary
    rows = {row["path"]: row for row in csv.DictReader((tmp_path / "cull.csv").open())}
    assert "truncated" in rows[str(folder / "broken.jpg")]["error"] and rows[str(notes)]["error"]
    assert rows[str(folder / "IMG_0.jpg")]["status"] == "pick" and not rows[str(folder / "IMG_0.jpg")]["error"]


def test_cli_a_cull_where_every_file_failed_exits_2_and_keeps_its_json(run_cli, workbench_env, tmp_path, nima_weights):
    (Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name).symlink_to(nima_weights)
    proc = run_cli("cull", "nima", str(tmp_path / "no" / "such" / "folder"), "--json", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    document = json.loads(proc.stdout)
    assert "nothing could be culled" in document["error"] and len(document["failed"]) == 1


def test_cli_sends_the_persons_ratings_not_its_own_stars_to_the_training_set(culled, run_cli, workbench_env, tmp_path,
                                                                             nima_weights):
    """The CLI's feedback loop: a cull wrote its sidecars (--write-xmp), the person re-rated one photo and
    rejected another in their photo manager; --send-to-training sends those two, scored by the star
    mapping, and leaves out the stars the workbench wrote itself."""
    import copy

    from workbench.dataset.ratings import StarMapping

    shoot, _, _, _ = culled
    folder = tmp_path / "shoot"
    shutil.copytree(shoot.folder, folder, ignore=shutil.ignore_patterns("*.xmp"))
    (Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name).symlink_to(nima_weights)
    earlier = copy.deepcopy(_result(culled))
    for photo in earlier.photos:
        photo.path = str(folder / Path(photo.path).name)
    assert not write_cull_xmp(earlier)["failed"]  # what `cull --write-xmp` wrote
    rerated, rejected = earlier.picks[:2]
    write_rating(rerated, 2)   # merged: the workbench's score stays in the sidecar, the stars are the person's
    write_rating(rejected, -1)

    document = json.loads(run_cli("cull", "nima", str(folder), "--json", "--send-to-training").stdout)
    mapping = StarMapping.from_settings(load_settings())
    sent = {d["path"]: d["score"] for d in document["training"]["sent"]}
    assert sent == {rerated: mapping.scores[1], rejected: mapping.score_min}
    assert document["training"]["added"] == 2
    assert len(document["training"]["left_out_as_written"]) == document["n_photos"] - 2
    entries = ScoreStore.from_settings(load_settings()).entries()
    assert sorted(e.score for e in entries) == sorted(sent.values())

    for sidecar in folder.glob("*.xmp"):
        sidecar.unlink()
    nothing = run_cli("cull", "nima", str(folder), "--send-to-training")  # said, and the cull still printed
    assert "none of these photos has a rating of yours" in nothing.stderr and "group 1" in nothing.stdout
