"""The backbone registry: adding a backbone is one decorated function.

The decorated function builds the *full* network matching its weights file (the
classifier included), so a weights file loads strictly and a wrong or partial
file is caught. ``head`` names the module replaced by ``Identity`` to turn the
classifier into a feature extractor; ``to_features`` replaces that rule where a
network needs more (NIMA, CLIP).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
from PIL import Image

from workbench.backbones.weights import (
    DownloadFailed,
    WeightSource,
    WeightStatus,
    WeightsUnavailable,
    cache_dir,
    download,
    missing_message,
    random_weights_id,
    read_state_dict,
    resolve,
    source_url,
    weights_id_of,
)
from workbench.errors import BadInput, NotFound

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from workbench.config import Settings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

# Bump when the pixels a network sees change (resize rule, decoding): it is part
# of every feature-cache key, so stale features are never reused.
PREPROCESSING_VERSION = "squash-resize-v2"

# interpolation name (BackboneSpec.interpolation) -> Pillow filter
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the workbench knows about one backbone, as data."""

    name: str
    create: Callable[[], nn.Module]
    description: str
    input_size: int
    feature_dim: int
    weights: tuple[WeightSource, ...]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    head: Optional[str] = None  # dotted path of the module replaced by Identity
    to_features: Optional[Callable[[nn.Module], nn.Module]] = None
    gradcam_layer: str = ""  # dotted path inside the *feature* model
    online_only: bool = False  # no offline source exists anywhere
    # JPEGs may be decoded at reduced scale near input_size (much faster); off where the
    # published model's numbers depend on resizing the full decode (NIMA's nearest resize).
    draft_decode: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)
    # Multi-level view: (dotted module path inside the *feature* model, channels) of each stage
    # whose output is globally average-pooled and concatenated (MLSP, Hosu et al. CVPR 2019).
    # Early stages see colour, texture and contrast; the last one sees objects. Empty: no such view.
    stage_taps: tuple[tuple[str, int], ...] = ()
    # The CLIP model (Hugging Face id, image and text towers) behind the clip_prompts view; empty: no such view.
    prompt_model: str = ""

    def feature_dim_of(self, view: str) -> int:
        """Length of one image's vector in ``view`` (see ``FEATURE_VIEWS``)."""
        check_view(self, view)
        return VIEWS[view].dim(self)


@dataclass(frozen=True)
class FeatureView:
    """One way of turning a backbone's forward pass into a vector per photo, as data.

    ``refuse(spec)`` says why a backbone has no such view (None: it has). ``wrap(model, spec)``
    hooks around the backbone's own network (its ``remove()`` unhooks it). A view with a network
    of its own (CLIP prompts) gives ``status(spec, settings, random_weights)`` (where its weights
    come from, loading nothing) and ``load(spec, settings, random_weights) -> LoadedBackbone``.
    """

    name: str
    description: str
    dim: Callable[["BackboneSpec"], int]
    refuse: Callable[["BackboneSpec"], Optional[str]] = lambda spec: None
    wrap: Optional[Callable[[nn.Module, "BackboneSpec"], nn.Module]] = None
    status: Optional[Callable[..., WeightStatus]] = None
    load: Optional[Callable[..., "LoadedBackbone"]] = None


VIEWS: dict[str, FeatureView] = {}
# name -> what it is, for --help and the UI (filled by register_view)
FEATURE_VIEWS: dict[str, str] = {}


def register_view(view: FeatureView) -> FeatureView:
    if view.name in VIEWS:
        raise ValueError(f"feature view {view.name} registered twice")
    VIEWS[view.name] = view
    FEATURE_VIEWS[view.name] = view.description
    return view


def check_view(spec: "BackboneSpec", view: str) -> None:
    if view not in VIEWS:
        raise BadInput(f"unknown feature view {view!r}; choose one of: {', '.join(VIEWS)}")
    reason = VIEWS[view].refuse(spec)
    if reason:
        raise BadInput(reason)


def view_weight_status(name: str, view: str, settings: "Settings", *, random_weights: bool = False) -> WeightStatus:
    """Where the weights a view of backbone ``name`` needs come from now: the view's own network's
    (CLIP prompts) or the backbone's."""
    spec = get_backbone(name)
    check_view(spec, view)
    if VIEWS[view].status is not None:
        return VIEWS[view].status(spec, settings, random_weights=random_weights)
    if random_weights:
        return WeightStatus("random", "random initialisation requested", random_weights_id())
    return weight_status(name, settings)


def load_for_view(name: str, view: str, settings: "Settings", *, random_weights: bool = False) -> "LoadedBackbone":
    """The network that computes ``view`` of backbone ``name``: the view's own, or the backbone."""
    spec = get_backbone(name)
    check_view(spec, view)
    if VIEWS[view].load is not None:
        return VIEWS[view].load(spec, settings, random_weights=random_weights)
    return load_backbone(name, settings, random_weights=random_weights)


def multi_level(inner: nn.Module, taps: tuple[tuple[str, int], ...]) -> nn.Module:
    """``inner`` wrapped to give every tap's output, pooled and concatenated (``modules.MultiLevel``)."""
    from workbench.backbones.modules import MultiLevel  # torch: loaded when a network is, not at start

    return MultiLevel(inner, taps)


register_view(FeatureView(
    "pooled", "the last layer's pooled features (what the network's classifier sees)", lambda spec: spec.feature_dim))
register_view(FeatureView(
    "multilevel", "every stage's output, pooled and concatenated (colour, texture and layout as well as objects)",
    lambda spec: sum(c for _, c in spec.stage_taps),
    refuse=lambda spec: None if spec.stage_taps else
    f"{spec.name} declares no stage taps, so it has no multilevel view; use --features pooled",
    wrap=lambda model, spec: multi_level(model, spec.stage_taps)))

BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(**fields) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Register ``fn`` (building the full network) under its own name with ``fields``."""

    def decorate(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if fn.__name__ in BACKBONES:
            raise ValueError(f"backbone {fn.__name__} registered twice")
        BACKBONES[fn.__name__] = BackboneSpec(name=fn.__name__, create=fn, **fields)
        return fn

    return decorate


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise NotFound(f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}") from None


# --------------------------------------------------------------- transform
class ImageTransform:
    """PIL RGB image -> normalised float tensor [3, S, S].

    The whole photo is resized to S x S (aspect ratio not kept) instead of a
    centre crop: composition near the edges matters for aesthetics, and it is
    how NIMA was trained. Picklable, so DataLoader workers can run it.
    """

    def __init__(self, size: int, mean, std, interpolation: str) -> None:
        import torch

        self.size = size
        self.resample = RESAMPLE[interpolation]
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        import torch

        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), self.resample)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        return (pixels.float().div_(255.0) - self.mean) / self.std


def make_transform(spec: BackboneSpec) -> ImageTransform:
    return ImageTransform(spec.input_size, spec.mean, spec.std, spec.interpolation)


# ------------------------------------------------------------------ loading
def timm_features(model: nn.Module) -> nn.Module:
    """A timm classifier as a feature extractor: its pooled features, no classifier."""
    model.reset_classifier(0)
    return model


def l2_normalized(inner: nn.Module) -> nn.Module:
    """``inner`` with unit-length output rows (``modules.L2Normalized``)."""
    from workbench.backbones.modules import L2Normalized

    return L2Normalized(inner)


def _replace_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_path, _, leaf = dotted.rpartition(".")
    parent = operator.attrgetter(parent_path)(model) if parent_path else model
    if leaf.isdigit():
        parent[int(leaf)] = new
    else:
        setattr(parent, leaf, new)


def feature_model(spec: BackboneSpec, full: nn.Module) -> nn.Module:
    if spec.to_features is not None:
        return spec.to_features(full)
    if spec.head:
        from torch import nn

        _replace_module(full, spec.head, nn.Identity())
    return full


@dataclass
class LoadedBackbone:
    """A ready feature extractor: ``model`` maps a normalised [N,3,S,S] tensor to [N, feature_dim]."""

    spec: BackboneSpec
    model: nn.Module
    weights: WeightStatus
    transform: ImageTransform

    @property
    def gradcam_layer(self) -> nn.Module | None:
        """The module to hook for Grad-CAM (the last spatial feature map); None for ViTs."""
        if not self.spec.gradcam_layer:
            return None
        return operator.attrgetter(self.spec.gradcam_layer)(self.model)


def weight_status(name: str, settings: "Settings", *, check_online: bool = True) -> WeightStatus:
    """Where ``name``'s weights would come from right now (downloads nothing)."""
    return resolve(get_backbone(name), settings, check_online=check_online)[0]


def load_pretrained_state(spec: BackboneSpec, settings: "Settings", *, progress: bool = True) -> tuple[dict, WeightStatus]:
    """Resolve, download if that is the way, and read the state dict. Raises WeightsUnavailable."""
    status, source = resolve(spec, settings, check_online=False)
    if source is None:
        raise WeightsUnavailable(status.detail)
    path = status.path
    downloaded_now = False
    if path is None:  # download now
        url = source_url(spec.name, source)
        try:
            path = download(url, cache_dir(source, settings) / source.filename, sha256=source.sha256,
                            sha256_prefix=source.sha256_prefix, progress=progress)
        except DownloadFailed as exc:
            raise WeightsUnavailable(f"{missing_message(spec, settings)} ({exc})") from exc
        downloaded_now = True
        status = WeightStatus("download", f"downloaded from {url} to {path}", weights_id_of(path), path=path, url=url)
    try:
        state = read_state_dict(path, source)
    except Exception as exc:  # a damaged or foreign file: say which and why
        if downloaded_now or status.source == "download":
            path.unlink(missing_ok=True)  # our own cache: never keep a file that does not load
            raise WeightsUnavailable(f"The weights downloaded for {spec.name} ({path.name}) cannot be read ({exc}); "
                                     f"the file was removed. Try again.") from exc
        raise WeightsUnavailable(f"The weights file {path} for {spec.name} cannot be read: {exc}. "
                                 f"Replace it with {source.filename} from {source_url(spec.name, source) or 'its publisher'}.") from exc
    return state, status


def load_backbone(name: str, settings: "Settings", *, random_weights: bool = False, progress: bool = True) -> LoadedBackbone:
    """Build ``name`` with pretrained weights (or seeded random ones when asked), in eval mode.

    Raises :class:`WeightsUnavailable` when no weights can be found; never falls
    back to random weights on its own.
    """
    import torch

    spec = get_backbone(name)
    if random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            full = spec.create()
        status = WeightStatus("random", "random initialisation requested (--random-weights); "
                              "features carry no learned meaning", random_weights_id())
    else:
        state, status = load_pretrained_state(spec, settings, progress=progress)
        full = spec.create()
        try:
            full.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsUnavailable(f"The weights file {status.path} does not fit {spec.name}: "
                                     f"{str(exc).splitlines()[0]} ... Is it the right file?") from exc
    model = feature_model(spec, full).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedBackbone(spec=spec, model=model, weights=status, transform=make_transform(spec))


def backbone_choices(settings: "Settings") -> list[tuple[str, str]]:
    """(label, name) pairs for UI dropdowns, e.g. ("efficientnet_lite0 — package (offline)", "efficientnet_lite0")."""
    choices = []
    for name in BACKBONES:
        status = weight_status(name, settings)
        label = status.label()
        if status.source == "download" and status.path is None:
            label = "download (needs internet)"
        elif not status.available:  # not a dead end: choosing it says which file to add, and where
            label = "no weights yet (choose it to see how to add them)"
        choices.append((f"{name} — {label}", name))
    return choices


def __getattr__(name: str):
    # MultiLevel and L2Normalized subclass nn.Module, so they live in workbench.backbones.modules (torch
    # loads with them); importing them from here still works
    if name in ("MultiLevel", "L2Normalized"):
        import workbench.backbones.modules as modules

        return getattr(modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
