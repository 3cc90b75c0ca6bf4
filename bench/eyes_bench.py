"""The closed-eye flag (workbench/faces.py) on real faces and on closed-eye variants of them.

    .venv/bin/python bench/eyes_bench.py [--limit 1218] [--out /tmp/eyes]

1. Every SAVOIAS photo (``../shared/datasets/savoias``) and the package sample photos
   (scikit-image's astronaut, scipy's face...) are searched for faces as the cull
   does (luma, long side up to FACE_SIZE). Those are real faces; their eyes' states
   are whatever they are (look at the contact sheet ``--out``/faces.jpg: each crop
   is captioned with its eye aspect ratio and a * when flagged).
2. Each face found gets a closed-eye variant: both eye contours (landmarks 36-47,
   grown by a third) are painted over with the median skin tone of a ring around
   each eye (plus a little of its texture), and a dark lash line is drawn along the
   lower lid from corner to corner. This is a weak proxy for a real blink: the painted eye has no lashes'
   shadow and no bulge of the lid, so it may be easier (or harder) than a real one.
3. Prints: faces found; on the original faces the share flagged (false flags, if
   the eyes are open: check the sheet); on the variants the share whose face is
   still found and the share flagged (detection rate); the AUC of the ratio.
   Also the time of eye_report on a 12-MP frame.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def package_images() -> dict[str, np.ndarray]:
    out = {}
    try:
        from skimage import data

        for name in ("astronaut", "coffee", "chelsea", "camera", "immunohistochemistry", "hubble_deep_field"):
            out[f"skimage:{name}"] = getattr(data, name)()
    except Exception:  # noqa: BLE001  a sample missing from this version is not a failure
        pass
    try:
        from scipy import datasets

        out["scipy:face"] = datasets.face()
    except Exception:  # noqa: BLE001  scipy's datasets need pooch and a download: absent offline
        pass
    return out


def close_eyes(image: Image.Image, points: np.ndarray) -> Image.Image:
    """Paint both eyes shut: each eye's contour (grown by a third) filled with the median skin
    tone of a ring around it (with a little of the ring's texture), and a dark lash line along
    the lower lid from corner to corner, where a closed upper lid's edge rests."""
    out = image.copy()
    pixels = np.asarray(image, dtype=np.float32)
    rng = np.random.default_rng(0)
    for eye in (points[36:42], points[42:48]):
        centre = eye.mean(axis=0)
        grown = centre + (eye - centre) * 1.35
        ring = centre + (eye - centre) * 2.0
        inner = Image.new("L", image.size, 0)
        ImageDraw.Draw(inner).polygon([tuple(p) for p in grown], fill=255)
        outer = Image.new("L", image.size, 0)
        ImageDraw.Draw(outer).polygon([tuple(p) for p in ring], fill=255)
        around = (np.asarray(outer) > 0) & (np.asarray(inner) == 0)
        if not around.any():
            continue
        tone = np.median(pixels[around], axis=0)
        spread = pixels[around].std(axis=0) * 0.3
        skin = np.clip(tone + rng.normal(0, 1, pixels.shape) * spread, 0, 255).astype(np.uint8)
        mask = inner.filter(ImageFilter.GaussianBlur(float(max(1.0, np.ptp(eye[:, 0]) / 15))))
        out = Image.composite(Image.fromarray(skin).filter(ImageFilter.GaussianBlur(0.7)), out, mask)
        width = max(1, round(np.linalg.norm(eye[0] - eye[3]) / 10))
        lash = [tuple(eye[0]), tuple(eye[5]), tuple(eye[4]), tuple(eye[3])]
        ImageDraw.Draw(out).line(lash, fill=tuple(int(v * 0.35) for v in tone), width=width, joint="curve")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1218, help="SAVOIAS photos to search")
    parser.add_argument("--out", type=Path, help="write the contact sheets (faces.jpg, closed.jpg) here")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from workbench.faces import EAR_CLOSED, FACE_SIZE, eye_aspect_ratio, eye_landmarks, eye_report
    from workbench.images import load_luma

    sources: dict[str, Image.Image] = {}
    for path in sorted((SHARED / "datasets" / "savoias" / "images").glob("*.jpg"))[:args.limit]:
        with Image.open(path) as im:
            sources[path.name] = im.convert("RGB")
    sources.update({k: Image.fromarray(v).convert("RGB") for k, v in package_images().items()})
    t0 = time.perf_counter()
    originals, variants, crops = [], [], []
    for name, image in sources.items():
        for points in eye_landmarks(image.convert("L")):
            ratio = (eye_aspect_ratio(points[36:42]) + eye_aspect_ratio(points[42:48])) / 2
            shut = close_eyes(image, points)
            found = eye_landmarks(shut.convert("L"))
            # the variant's face is the one whose landmarks lie nearest the original's
            near = min(found, key=lambda q: np.abs(q - points).mean(), default=None)
            matched = near is not None and np.abs(near - points).mean() < 0.1 * np.ptp(points[:, 0])
            shut_ratio = (eye_aspect_ratio(near[36:42]) + eye_aspect_ratio(near[42:48])) / 2 if matched else None
            originals.append(ratio)
            variants.append(shut_ratio)
            box = (*points.min(axis=0).astype(int) - 10, *points.max(axis=0).astype(int) + 10)
            crops.append((name, ratio, shut_ratio, image.crop(box), shut.crop(box)))
    seconds = time.perf_counter() - t0
    n = len(originals)
    print(f"searched {len(sources)} photos ({args.limit} SAVOIAS + package samples) in {seconds:.0f} s: {n} faces "
          f"in {len({c[0] for c in crops})} photos")
    if not n:
        return
    flagged = [r < EAR_CLOSED for r in originals]
    kept = [r for r in variants if r is not None]
    print(f"original faces flagged 'eyes closed?' (EAR < {EAR_CLOSED}): {sum(flagged)}/{n}; EAR median "
          f"{np.median(originals):.3f}, 5th percentile {np.percentile(originals, 5):.3f}")
    print(f"closed-eye variants: face still found {len(kept)}/{n}; flagged {sum(r < EAR_CLOSED for r in kept)}/{len(kept)} "
          f"of those ({sum(r < EAR_CLOSED for r in kept)}/{n} of all); EAR median {np.median(kept):.3f}" if kept else
          "closed-eye variants: no face found again")
    if kept:
        pairs = [(o, v) for o, v in zip(originals, variants) if v is not None]
        auc = roc_auc_score([0] * len(pairs) + [1] * len(pairs), [-o for o, _ in pairs] + [-v for _, v in pairs])
        print(f"AUC of the eye aspect ratio, originals vs their variants: {auc:.3f}")
    for name, ratio, shut_ratio, *_ in crops:
        print(f"  {name}: EAR {ratio:.3f}{' *' if ratio < EAR_CLOSED else ''} -> variant "
              f"{'not found' if shut_ratio is None else f'{shut_ratio:.3f}' + (' *' if shut_ratio < EAR_CLOSED else '')}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for which, column in (("faces", 3), ("closed", 4)):
            tiles = [c[column].resize((128, 128)) for c in crops]
            sheet = Image.new("RGB", (128 * 8, 140 * ((len(tiles) + 7) // 8)), "white")
            for i, (tile, c) in enumerate(zip(tiles, crops)):
                sheet.paste(tile, (128 * (i % 8), 140 * (i // 8)))
                r = c[1] if column == 3 else c[2]
                label = "not found" if r is None else f"{r:.2f}{' *' if r < EAR_CLOSED else ''}"
                ImageDraw.Draw(sheet).text((128 * (i % 8) + 2, 140 * (i // 8) + 128), f"{i} {label}", fill="black")
            sheet.save(args.out / f"{which}.jpg", quality=90)
    # the cost on a camera-size frame: luma decode at FACE_SIZE + detection + landmarks
    frame = next(iter(sources.values())).resize((4000, 3000))
    frame.save("/tmp/_eyes_bench_12mp.jpg", quality=90)
    t0 = time.perf_counter()
    for _ in range(3):
        eye_report(load_luma("/tmp/_eyes_bench_12mp.jpg", FACE_SIZE))
    print(f"eye_report on a 12-MP JPEG (luma decode + search at {FACE_SIZE} px): {(time.perf_counter() - t0) / 3 * 1000:.0f} ms")


if __name__ == "__main__":
    main()
