"""Training, evaluating and comparing model families.

API summary (what the UI's Train tab, the CLI and the benchmark call)::

    from workbench.training import train, compare, check_weights, TooFewImages, TrainingError

    for event in train(family, settings, backbone=None, params=None, stop=NEVER_STOP, random_weights=False,
                       seed=None, data=None):
        ...  # Notice (weights source; RANDOM weights are a level="warning" notice), Progress (feature
             # extraction), EpochEnd(epoch, train_loss, val_loss, metrics={"srcc", "mae", ...}, total_epochs)
             # per epoch / GBR stage / batch of RF trees, then Finished(RunManifest | None, stopped)
    # Raises before the first epoch: TooFewImages (< 10 labelled), TrainingError (no weights and no
    # --random-weights), BadParameter / UnknownFamily (workbench.models). Stop: set the StopFlag;
    # the best checkpoint so far is saved as a run with status "stopped" (None if nothing was learnt).

    check_weights(family, settings, backbone=None, random_weights=False, features=None) -> list[Notice]
        # call when a family/backbone is chosen: raises TrainingError if it cannot train (e.g. Swin
        # weights offline), returns notices to show (weights source, download needed, random weights)

    for event in compare(families, settings, backbone=None, folds=None, seed=None, stop=NEVER_STOP,
                         random_weights=False, params=None, data=None):
        ...  # Notice, Progress(done, total, "svr: fold 3/5 SRCC 0.61"), then Finished(CompareReport)
    report.to_json() -> {"n_images", "backbone", "folds", "seed", "results": [{"model", "srcc", "plcc",
                         "krcc", "mae", "rmse", "r2", "accuracy", "fit_seconds", "fit_cpu_seconds", "srcc_std",
                         "accuracy_baseline", "good_share"}], ...}
    report.leaderboard(metric="srcc") -> list[FamilyResult]  best first

    compute_metrics(y_true, y_pred, score_min, score_max, threshold=None) -> {srcc, plcc, krcc, mae, rmse,
                                              r2, accuracy, accuracy_baseline (a constant guess's accuracy), good_share}
    stratified_split(scores, val_fraction, test_fraction, seed) -> Split(train, val, test)   (indices)
    kfold(scores, folds, seed) -> [(train_idx, test_idx)]      same seed, same folds
    LabelledSet.from_pairs([(path, score), ...])               train/compare on any list of images

Stored runs, their leaderboard rows and loss curves: ``workbench.runs``.
Families and their hyper-parameters (for building controls): ``workbench.models``.
"""
from workbench.metrics import HIGHER_IS_BETTER, METRIC_NAMES, compute_metrics
from workbench.training.compare import CompareReport, FamilyResult, compare
from workbench.training.data import LabelledSet, labelled_set
from workbench.training.splits import MIN_IMAGES, Split, TooFewImages, kfold, stratified_split
from workbench.training.train import TrainingError, check_weights, train

__all__ = ["CompareReport", "FamilyResult", "compare", "LabelledSet", "labelled_set", "METRIC_NAMES",
           "HIGHER_IS_BETTER", "compute_metrics", "MIN_IMAGES", "Split", "TooFewImages", "kfold",
           "stratified_split", "TrainingError", "check_weights", "train"]
