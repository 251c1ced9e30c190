"""One epoch's augmented training batches, made in the training process or in worker processes.

Every random draw is a function of (seed, epoch, step) alone: the epoch's order comes from (seed, epoch) and each
batch's augmentation from (seed, epoch, step). A run therefore gives the same batches whatever the number of
workers, and a resumed run continues exactly where it stopped. Workers matter on a GPU machine, where augmenting
on one core would leave the GPU waiting; on the 2-core CPU machine keep 0 (the training process augments).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def seeded(seed: int, epoch: int, step: int = -1) -> torch.Generator:
    """The generator of an epoch's order (step -1) or of one batch's augmentation."""
    state = np.random.SeedSequence([seed, epoch, step + 1]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class EpochBatches(Dataset):
    """Batch `step` of epoch `epoch`: `batch` faces in the epoch's order, augmented, with their targets."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, augment: Augmentation, seed: int,
                 epoch: int) -> None:
        if len(x) < batch:
            raise ValueError(f"{len(x)} training faces do not fill one batch of {batch}")
        self.x, self.y, self.batch, self.augment = x, y, batch, augment
        self.seed, self.epoch = seed, epoch
        self.order = torch.randperm(len(x), generator=seeded(seed, epoch))

    def __len__(self) -> int:
        return len(self.x) // self.batch  # the last partial batch is dropped

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= step < len(self):
            raise IndexError(step)
        idx = self.order[step * self.batch : (step + 1) * self.batch]
        return self.augment(self.x[idx], seeded(self.seed, self.epoch, step)), self.y[idx]


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # workers run side by side; each one thread


def epoch_loader(batches: EpochBatches, workers: int, pin_memory: bool = False) -> DataLoader:
    """Iterate `batches` in step order; with `workers` > 0 they are made ahead in that many processes."""
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                      prefetch_factor=4 if workers else None, worker_init_fn=_one_thread if workers else None)
