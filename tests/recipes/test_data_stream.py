"""The resumable batch stream: epoch order from (seed, epoch), any start position, rank sharding."""

from __future__ import annotations

import itertools

import pytest
from torch.utils.data import Dataset

from vqcnir.training.data import DataPosition, EpochSampler, batch_stream


class Numbers(Dataset):
    def __init__(self, size: int) -> None:
        self.size, self.epochs = size, []

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __getitem__(self, index: int) -> dict:
        return {"index": index}


def _take(position: DataPosition, count: int, size: int = 7, batch: int = 2, seed: int = 0) -> list[list[int]]:
    stream = batch_stream(Numbers(size), batch, 0, seed, position)
    return [b["index"].tolist() for b in itertools.islice(stream, count)]


def test_resuming_at_any_position_continues_the_same_sequence():
    straight = _take(DataPosition(), 12)
    for done in range(12):
        position = DataPosition()
        _take(position, done)
        assert _take(DataPosition(position.epoch, position.batch), 12 - done) == straight[done:]


def test_epochs_are_full_batches_of_a_fresh_permutation():
    position = DataPosition()
    batches = _take(position, 6)  # 7 samples, batch 2: 3 batches per epoch, the last sample dropped
    first, second = sum(batches[:3], []), sum(batches[3:], [])
    assert len(set(first)) == 6 and len(set(second)) == 6 and first != second
    assert (position.epoch, position.batch) == (1, 3)
    assert _take(DataPosition(), 6, seed=1) != batches


def test_ranks_split_each_epoch():
    parts = [EpochSampler(10, seed=0, rank=r, world_size=3) for r in range(3)]
    seen = [list(p) for p in parts]
    assert all(len(s) == 4 for s in seen) and set(sum(seen, [])) == set(range(10))
    whole = list(EpochSampler(10, seed=0))
    padded = whole + whole[:2]  # wrapped so that each of the 3 ranks gets 4
    assert seen == [padded[r::3] for r in range(3)]
    assert list(EpochSampler(10, seed=0, shuffle=False)) == list(range(10))


def test_too_few_samples_for_a_batch():
    with pytest.raises(ValueError, match="do not fill one batch"):
        _take(DataPosition(), 1, size=3, batch=4)
