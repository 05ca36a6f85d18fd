"""The one preprocessing path: crop + ImageNet normalisation, shared by training and every tracker."""
import numpy as np
import pytest
import torch

from vtrack.tracking import preprocess
from vtrack.train.processing import normalize_image


def _patch(n=None, h=6, w=5):
    rng = np.random.default_rng(0)
    shape = (h, w, 3) if n is None else (n, h, w, 3)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def test_normalize_shape_and_values():
    p = _patch()
    x = preprocess.normalize(p)
    assert x.dtype == np.float32 and x.shape == (1, 3, 6, 5) and x.flags["C_CONTIGUOUS"]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for c in range(3):
        np.testing.assert_allclose(x[0, c], (p[..., c] / 255.0 - mean[c]) / std[c], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(preprocess.normalize(p, imagenet=False)[0], p.transpose(2, 0, 1) / np.float32(255))
    batch = preprocess.normalize(_patch(4))
    assert batch.shape == (4, 3, 6, 5)
    # a float32 patch (what sample_target returns) with integer values gives the same bits
    np.testing.assert_array_equal(preprocess.normalize(p.astype(np.float32)), x)


def test_training_and_tracking_share_the_path_bit_for_bit():
    p = _patch()
    train = normalize_image(p)
    track = preprocess.to_tensor(p, "cpu")
    assert train.shape == (3, 6, 5) and track.shape == (1, 3, 6, 5)
    assert torch.equal(train, track[0])
    # the torch formula the OSTrack and VLT trackers used before gives the same bits
    t = torch.from_numpy(p).permute(2, 0, 1).float().div_(255.0)
    old = (t - torch.tensor((0.485, 0.456, 0.406)).view(3, 1, 1)) / torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)
    assert torch.equal(old, track[0])


def test_normalize_rejects_bad_input():
    with pytest.raises(TypeError, match="patch: expected a uint8 or float32 numpy array"):
        preprocess.normalize(torch.zeros(4, 4, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"patch: expected a uint8 or float32 array HxWx3 or NxHxWx3, got float64 \(4, 4, 3\)"):
        preprocess.normalize(np.zeros((4, 4, 3), np.float64))
    with pytest.raises(ValueError, match=r"got uint8 \(4, 4\)"):
        preprocess.normalize(np.zeros((4, 4), np.uint8))
