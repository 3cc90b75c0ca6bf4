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
             amp: bool = False, result: LoopResult | None = None) -> Iterator[EpochEnd]:
    """Train ``module`` for up to ``epochs``, yielding one EpochEnd per epoch.

    ``train_batches(epoch)`` yields (inputs, targets) already on ``device``;
    ``step_loss(module, x, y)`` returns the scalar loss to minimise;
    ``evaluate(module)`` returns (val_loss, y_true_scores, y_pred_scores) or is
    None when there is no validation split (then the last epoch is kept).
    """
    result = result if result is not None else LoopResult()
    best_state = None
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
    module.eval()
