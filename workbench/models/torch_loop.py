"""The epoch loop shared by every PyTorch family.

One loop, so early stopping, the Stop button and "keep the best checkpoint"
behave the same for the MLP head, the NIMA head, fine-tuning and Swin-MoE:
the stop flag is checked every batch; the weights with the lowest validation
loss are kept and restored at the end (also after a Stop).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from workbench.errors import TrainingError
from workbench.events import EpochEnd, StopFlag
from workbench.metrics import quick_metrics
from workbench.models.declarations import START_MARGIN


@dataclass
class LoopResult:
    best_epoch: int = 0
    best_val_loss: float = math.inf
    epochs_run: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seeded_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def _diverged(which: str, loss: float, epoch: int) -> Exception:
    """The error that ends a run whose loss blew up; the weights are useless, so nothing is saved."""
    shown = "NaN" if math.isnan(loss) else "infinite" if math.isinf(loss) else "finite, but predictions are not"
    return TrainingError(f"training diverged in epoch {epoch} ({which} loss is {shown}) — "
                         f"lower the learning rate and train again; no run was saved")


def fit_loop(module: nn.Module, optimizer: torch.optim.Optimizer,
             train_batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
             step_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
             evaluate: Callable[[nn.Module], tuple[float, np.ndarray, np.ndarray]] | None,
             *, epochs: int, patience: int, stop: StopFlag, device: torch.device,
             amp: bool = False, result: LoopResult | None = None, seed: int | None = None,
             start_counts: bool = False, start_margin: float = START_MARGIN) -> Iterator[EpochEnd]:
    """Train ``module`` for up to ``epochs``, yielding one EpochEnd per epoch.

    With ``seed``, dropout and every other draw from torch's global generator come
    from a private generator seeded with it (the caller's state is restored after),
    so the same data and seed give the same model: without it two fits of one
    comparison differed by 0.1 SRCC on 60 photos, which no leaderboard survives.

    ``train_batches(epoch)`` yields (inputs, targets) already on ``device``;
    ``step_loss(module, x, y)`` returns the scalar loss to minimise;
    ``evaluate(module)`` returns (val_loss, y_true_scores, y_pred_scores) or is
    None when there is no validation split (then the last epoch is kept).
    ``start_counts``: the untrained module is a candidate too (epoch 0), for modules that
    start from a fitted solution (the heads start from ridge) and must not end worse than it;
    a trained epoch replaces it only with a validation loss ``start_margin`` (a fraction) lower.
    """
    if seed is None:
        yield from _fit_loop(module, optimizer, train_batches, step_loss, evaluate, epochs=epochs,
                             patience=patience, stop=stop, device=device, amp=amp, result=result,
                             start_counts=start_counts, start_margin=start_margin)
        return
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield from _fit_loop(module, optimizer, train_batches, step_loss, evaluate, epochs=epochs,
                             patience=patience, stop=stop, device=device, amp=amp, result=result,
                             start_counts=start_counts, start_margin=start_margin)


def _fit_loop(module, optimizer, train_batches, step_loss, evaluate, *, epochs, patience, stop, device,
              amp, result, start_counts=False, start_margin=START_MARGIN) -> Iterator[EpochEnd]:
    result = result if result is not None else LoopResult()
    best_state = None
    if start_counts and evaluate is not None:
        module.eval()
        with torch.no_grad():
            start_loss = evaluate(module)[0]
        if math.isfinite(start_loss):
            # Training must beat the start clearly, not by the noise of a few dozen validation photos.
            result.best_val_loss, result.best_epoch = start_loss * (1.0 - start_margin), 0
            best_state = copy.deepcopy(module.state_dict())
    bad_epochs = 0
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    for epoch in range(1, epochs + 1):
        module.train()
        total, count = 0.0, 0
        started = time.perf_counter()
        for x, y in train_batches(epoch):
            if stop.is_set():
                result.stopped = True
                break
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                loss = step_loss(module, x, y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise _diverged("training", value, epoch)
            total += value * len(y)
            count += len(y)
        if result.stopped and count == 0:
            break  # the stop came before this epoch learnt anything
        train_loss = total / max(count, 1)
        module.eval()
        if evaluate is not None:
            with torch.no_grad():
                val_loss, y_true, y_pred = evaluate(module)
            if not math.isfinite(val_loss) or not np.all(np.isfinite(y_pred)):
                raise _diverged("validation", val_loss, epoch)
            metrics = quick_metrics(y_true, y_pred)
        else:
            val_loss, metrics = None, {}
        metrics["seconds"] = time.perf_counter() - started
        result.epochs_run = epoch
        event = EpochEnd(epoch, train_loss, val_loss, metrics, total_epochs=epochs)
        result.history.append(event.record())
        yield event
        score = val_loss if val_loss is not None else -epoch  # no validation: keep the latest
        if score < result.best_val_loss:
            result.best_val_loss, result.best_epoch = score, epoch
            best_state = copy.deepcopy(module.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
        if result.stopped or (patience and bad_epochs >= patience):
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    if start_counts and evaluate is not None and result.best_epoch == 0 and best_state is not None:
        result.best_val_loss = start_loss
    module.eval()
