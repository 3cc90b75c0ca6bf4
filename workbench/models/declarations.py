"""The families whose estimators are PyTorch networks (or live beside them), declared without PyTorch.

Their modules subclass ``nn.Module`` and scikit-learn's ``BaseEstimator`` when
imported, which costs about two seconds of torch, scipy and scikit-learn. The
CLI's options and the UI's controls need only what is declared here: name,
description, hyper-parameters, capabilities, and where the builder lives
(``"package.module:function"``), imported when a model is first built
(``Family.builder``) or a saved run is loaded (``workbench.models.torch_estimators``).
"""
from __future__ import annotations

from workbench.models.registry import Capabilities, Param, declare_family

AUGMENTATIONS = ("crop_flip", "flip", "none")  # workbench.models.image_models implements each
HEAD_LOSSES = ("mse", "mae", "huber", "huber_plcc")  # the keys of workbench.models.heads.LOSSES (a test checks)
SWIN_MICRO = "swin_micro"
# With ``start_counts``, an epoch replaces the start only if its validation loss is this much lower.
# SAVOIAS (lite0 features, 5-fold): 0.02 let the heads wander off ridge on noise (150 photos: NIMA
# head 0.590 vs ridge 0.607); 0.05 kept them at or above ridge on the full set and on 150 photos.
# The heads now keep ridge fixed and choose the hidden path's share on validation, so they pass 0
# (HEAD_START_MARGIN); this default is for callers whose linear start trains too (multimodal).
START_MARGIN = 0.05
# No extra margin for a trained epoch over ridge alone: with the linear path fixed and the hidden path's
# share chosen on validation, ridge is already the fallback. SAVOIAS, ten 150-photo draws (50 folds):
# margin 0 +0.010 SRCC over ridge (s.e. 0.004), the old 5% margin +0.003; all 1,218 photos: a tie either way.
HEAD_START_MARGIN = 0.0
RIDGE_ALPHA = 1000.0  # the ridge family's default penalty: the heads' linear path is that very model
NIMA_HEAD_MEMBERS = 3  # nima_head's networks per fit (head keeps one: three added nothing there)


# ------------------------------------------------------------ heads (workbench.models.heads)
def _common_params(epochs: int = 80, members: int = 1) -> list[Param]:
    return [
        Param("epochs", int, epochs, "passes over the training images", low=1, high=5000),
        Param("learning_rate", float, 3e-4, "AdamW step size", low=1e-6, high=1.0, log=True),
        Param("batch_size", int, 32, "images per step", low=1, high=4096),
        Param("weight_decay", float, 0.05, "AdamW weight decay", low=0.0, high=10.0),
        Param("dropout", float, 0.3, "dropout before the output layer (half of it on the inputs)", low=0.0, high=0.95),
        Param("hidden", int, 0, "hidden units; 0 = scale with the training set (n/8, between 16 and 256)",
              low=0, high=8192, advanced=True),
        Param("patience", int, 15, "stop after this many epochs without a better validation loss (0: never)",
              low=0, high=1000, advanced=True),
        Param("ridge_start", bool, True, "a linear path that is ridge on the same features (fitted in closed "
              "form, kept fixed); the hidden layer learns only what ridge misses, and is kept (and shrunk) "
              "only as far as it helps on the validation images", advanced=True),
        Param("ridge_alpha", float, RIDGE_ALPHA, "with ridge_start: the linear path's L2 penalty (ridge's alpha)",
              low=1e-6, high=1e7, log=True, advanced=True),
        Param("refit", bool, True, "after early stopping, train again on training + validation images for the "
              "chosen number of epochs", advanced=True),
        Param("members", int, members, "networks trained with different seeds and averaged", low=1, high=20,
              advanced=True),
        Param("start_margin", float, HEAD_START_MARGIN, "with ridge_start: how much lower (a fraction) a trained "
              "epoch's validation loss must be to replace ridge", low=0.0, high=0.9, advanced=True),
    ]


HEAD_CAPS = Capabilities(needs_features=True, iterative=True, explainable=True, torch=True)

declare_family("head", "Ridge plus a small PyTorch MLP on what ridge misses (frozen features; loss "
               f"{', '.join(HEAD_LOSSES[:-1])} or {HEAD_LOSSES[-1]}, the last Huber plus 1 - PLCC), kept only as far "
               "as it helps on validation photos; live loss curves.",
               build="workbench.models.heads:build_head",
               params=_common_params() + [Param("loss", str, "huber", "training loss", choices=HEAD_LOSSES)],
               capabilities=HEAD_CAPS)

declare_family("nima_head", "NIMA's way: a 10-bin score distribution trained with the EMD loss; "
               "predicts the mean and the spread.",
               build="workbench.models.heads:build_nima_head",
               # three networks: on all 1,218 SAVOIAS photos one network's residual lost to ridge on 3 of 5 folds
               # (-0.0009), three win 4 of 5 (+0.0002); on 150 photos +0.010 either way (BENCHMARKS.md)
               params=_common_params(members=NIMA_HEAD_MEMBERS) + [
                   Param("sigma", float, 1.0, "width (in bins) of the distribution a single score becomes",
                         low=0.1, high=5.0)],
               capabilities=Capabilities(needs_features=True, iterative=True, distribution=True,
                                         explainable=True, torch=True))

# ------------------------------------------------------------ finetune (workbench.models.finetune)
FINETUNE_PARAMS = [
    Param("epochs", int, 8, "passes over the training images", low=1, high=1000),
    Param("learning_rate", float, 1e-3, "AdamW step size of the head", low=1e-6, high=1.0, log=True),
    Param("backbone_lr_factor", float, 0.1, "the backbone learns this much slower than the head", low=0.0, high=1.0),
    Param("batch_size", int, 16, "images per step", low=2, high=512),
    Param("weight_decay", float, 1e-4, "AdamW weight decay", low=0.0, high=1.0),
    Param("dropout", float, 0.2, "dropout before the linear head", low=0.0, high=0.95),
    Param("augment", str, "crop_flip", "augmentation that keeps what makes a photo good", choices=AUGMENTATIONS),
    Param("color_jitter", bool, False, "also jitter brightness (changes what a person judges; off by default)",
          advanced=True),
    Param("image_size", int, 0, "input size in pixels; 0 = the backbone's own", low=0, high=1024, advanced=True),
    Param("patience", int, 3, "early stopping: epochs without a better validation loss (0: never)", low=0,
          high=1000, advanced=True),
    Param("loss", str, "huber", "training loss", choices=("huber", "mse"), advanced=True),
    Param("amp", bool, True, "mixed precision on a GPU (ignored on CPU)", advanced=True),
]

declare_family("finetune", "The whole CNN plus a head trained end to end (slower backbone LR, crops and flips, "
               "early stopping, mixed precision on GPU). Slow on a CPU.",
               build="workbench.models.finetune:build_finetune",
               params=FINETUNE_PARAMS,
               capabilities=Capabilities(needs_features=False, iterative=True, explainable=True, torch=True))

# ------------------------------------------------------------ swin_moe (workbench.models.swin_moe)
SWIN_MOE_PARAMS = [
    Param("epochs", int, 15, "passes over the training images", low=1, high=1000),
    Param("learning_rate", float, 1e-3, "AdamW step size of the head", low=1e-6, high=1.0, log=True),
    Param("freeze_backbone", bool, True, "keep Swin frozen (features computed once) instead of fine-tuning it"),
    Param("n_experts", int, 4, "expert MLPs", low=1, high=64),
    Param("top_k", int, 2, "experts each image is routed to", low=1, high=64),
    Param("balance_weight", float, 0.01, "weight of the load-balancing loss", low=0.0, high=10.0),
    Param("hidden", int, 128, "hidden units per expert", low=1, high=4096, advanced=True),
    Param("backbone_lr_factor", float, 0.05, "backbone LR / head LR when fine-tuning", low=0.0, high=1.0,
          advanced=True),
    Param("batch_size", int, 16, "images per step", low=2, high=512),
    Param("weight_decay", float, 1e-2, "AdamW weight decay", low=0.0, high=1.0, advanced=True),
    Param("dropout", float, 0.2, "dropout inside each expert", low=0.0, high=0.95, advanced=True),
    Param("augment", str, "crop_flip", "augmentation when fine-tuning", choices=AUGMENTATIONS, advanced=True),
    Param("color_jitter", bool, False, "also jitter brightness (off by default)", advanced=True),
    Param("patience", int, 5, "early stopping patience in epochs (0: never)", low=0, high=1000, advanced=True),
    Param("loss", str, "huber", "training loss", choices=("huber", "mse"), advanced=True),
    Param("amp", bool, True, "mixed precision on a GPU (ignored on CPU)", advanced=True),
]

declare_family("swin_moe", "Swin Transformer (swin_tiny) with a Mixture-of-Experts head: top-k gating and a "
               "load-balancing loss; backbone frozen or fine-tuned.",
               build="workbench.models.swin_moe:build_swin_moe",
               params=SWIN_MOE_PARAMS, default_backbone="swin_tiny",
               private_backbones={SWIN_MICRO: "a miniature Swin for quick tests; random weights only"},
               capabilities=Capabilities(needs_features=False, iterative=True, explainable=True, torch=True))

# ------------------------------------------------------------ image + text (workbench.models.multimodal)
declare_family("multimodal_concat",
               "Image features + text embedding + has-text flag into ridge or SVR: the image+text baseline.",
               build="workbench.models.multimodal:build_multimodal_concat",
               params=[Param("regressor", str, "ridge", "the model on the concatenation", choices=("ridge", "svr")),
                       Param("alpha", float, 1000.0, "ridge L2 penalty on standardised inputs",
                             low=1e-6, high=1e7, log=True),
                       Param("C", float, 3.0, "SVR inverse regularisation", low=1e-4, high=1e5, log=True)],
               capabilities=Capabilities(needs_features=True, needs_text=True))

declare_family("multimodal_moe",
               "Mixture of modality experts (image, text, fusion) with a gate that sees which modalities "
               "are present, in PyTorch with live loss curves; reports how much it leaned on text.",
               build="workbench.models.multimodal:build_multimodal_moe",
               params=[
                   Param("epochs", int, 80, "passes over the training images", low=1, high=5000),
                   Param("learning_rate", float, 1e-3, "AdamW step size", low=1e-6, high=1.0, log=True),
                   Param("batch_size", int, 32, "images per step", low=1, high=4096),
                   Param("weight_decay", float, 0.05, "AdamW weight decay", low=0.0, high=10.0),
                   Param("dropout", float, 0.3, "dropout in each expert", low=0.0, high=0.95),
                   Param("hidden", int, 128, "hidden units per expert", low=1, high=8192, advanced=True),
                   Param("aux_weight", float, 0.5, "weight of each expert's own score loss", low=0.0, high=10.0,
                         advanced=True),
                   Param("patience", int, 15, "stop after this many epochs without a better validation loss "
                         "(0: never)", low=0, high=1000, advanced=True)],
               capabilities=Capabilities(needs_features=True, iterative=True, torch=True, needs_text=True))
