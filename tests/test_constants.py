"""kernels.constants helpers."""
import numpy as np

from kernels import constants as C


def test_tier_indices_equal_tier_of():
    counts = np.arange(0, 60, dtype=np.int64)
    idx = C.tier_indices(counts)
    assert idx.dtype == np.int64 and idx.shape == counts.shape
    assert [C.TIER_NAMES[i] for i in idx] == [C.tier_of(int(n)) for n in counts]
    assert C.tier_indices(np.array([12, 13, 16, 17, 20, 21, 24, 25, 4097])).tolist() \
        == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert C.tier_indices(np.diff(np.array([0, 3, 3, 40], dtype=np.int64))).tolist() == [0, 0, 4]
    assert C.tier_indices(np.zeros(0, dtype=np.uint64)).shape == (0,)
    assert C.tier_indices([1, 100]).tolist() == [0, 4]
