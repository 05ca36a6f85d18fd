"""Crops, box mapping, clipping and windows against hand-computed values."""
import math

import cv2
import numpy as np
import pytest
import torch

from vtrack.config import from_dict
from vtrack.tracking.crops import CropConfig, box_from_crop, box_to_crop, clip_box, crop_side, sample_target
from vtrack.tracking.windows import cosine_window, hann_window


def _ramp(h=10, w=10):
    """Image whose channels hold the column index, the row index and a constant 7."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None, :]
    img[..., 1] = np.arange(h)[:, None]
    img[..., 2] = 7
    return img


def test_crop_side_modes():
    assert crop_side((0, 0, 4, 9), 2.0) == pytest.approx(12.0)  # sqrt(36) * 2
    # siamfc: p = (4 + 8) / 2 = 6 -> sqrt(10 * 14) * 1
    assert crop_side((5, 5, 4, 8), 1.0, mode="siamfc") == pytest.approx(math.sqrt(140))
    assert crop_side((5, 5, 4, 8), 255 / 127, mode="siamfc") == pytest.approx(math.sqrt(140) * 255 / 127)
    with pytest.raises(ValueError, match="mode"):
        crop_side((0, 0, 4, 4), 2.0, mode="bogus")
    with pytest.raises(ValueError, match="factor"):
        crop_side((0, 0, 4, 4), 0.0)
    with pytest.raises(ValueError, match="box_xywh"):
        crop_side((0, 0, -1, 4), 2.0)
    with pytest.raises(ValueError, match="box_xywh"):
        crop_side((0, 0, 4), 2.0)


def test_sample_target_identity_crop():
    img = _ramp()
    patch, r, crop = sample_target(img, (2, 3, 4, 4), 1.0, 4)
    assert r == 1.0
    np.testing.assert_allclose(crop, [2, 3, 4, 4])
    np.testing.assert_array_equal(patch, img[3:7, 2:6])
    assert patch.dtype == np.float32 and patch.shape == (4, 4, 3)


def test_sample_target_downscale_averages_pixel_pairs():
    img = _ramp() * 2  # column value 2j: the mean of two neighbours is an exact integer
    # box (3,3,4,4), factor 2 -> crop (1,1,8,8); output 4 -> r = 0.5: each output pixel centre
    # falls between source pixels 1+2u and 2+2u -> linear interpolation gives their mean.
    patch, r, crop = sample_target(img, (3, 3, 4, 4), 2.0, 4)
    assert r == 0.5
    np.testing.assert_allclose(crop, [1, 1, 8, 8])
    expected = [(2 * (1 + 2 * u) + 2 * (2 + 2 * u)) // 2 for u in range(4)]  # 3, 7, 11, 15
    assert expected == [3, 7, 11, 15]
    np.testing.assert_array_equal(patch[..., 0], np.tile(expected, (4, 1)))
    np.testing.assert_array_equal(patch[..., 1], np.tile(expected, (4, 1)).T)


def test_sample_target_pads_with_mean_colour():
    img = _ramp()
    mean = img.reshape(-1, 3).mean(0)  # (4.5, 4.5, 7)
    # crop (-2,-2,8,8) at scale 1: first two rows/cols outside the image
    patch, r, crop = sample_target(img, (0, 0, 4, 4), 2.0, 8)
    np.testing.assert_allclose(crop, [-2, -2, 8, 8])
    np.testing.assert_allclose(patch[0, 0], np.round(mean), atol=0.51)
    np.testing.assert_allclose(patch[1, 5], np.round(mean), atol=0.51)
    np.testing.assert_array_equal(patch[2:, 2:], img[0:6, 0:6])
    zero, _, _ = sample_target(img, (0, 0, 4, 4), 2.0, 8, pad="zero")
    assert zero[0, 0].tolist() == [0, 0, 0]
    rep, _, _ = sample_target(img, (0, 0, 4, 4), 2.0, 8, pad="replicate")
    assert rep[0, 0].tolist() == img[0, 0].tolist()
    col, _, _ = sample_target(img, (0, 0, 4, 4), 2.0, 8, pad=(1, 2, 3))
    assert col[0, 0].tolist() == [1, 2, 3]


def test_sample_target_center_and_siamfc_mode():
    img = _ramp(20, 20)
    patch, r, crop = sample_target(img, (0, 0, 2, 2), 2.0, 4, center=(10, 12))
    np.testing.assert_allclose(crop, [8, 10, 4, 4])
    np.testing.assert_array_equal(patch, img[10:14, 8:12])
    # siamfc: w=h=2 -> p=2 -> side sqrt(16) = 4
    _, r2, crop2 = sample_target(img, (8, 8, 2, 2), 1.0, 8, mode="siamfc")
    np.testing.assert_allclose(crop2, [7, 7, 4, 4])
    assert r2 == 2.0


def _smooth_image(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


@pytest.mark.parametrize("pad", ["mean", "zero", "replicate", (10, 200, 30)])
@pytest.mark.parametrize("box, factor, out", [((50.3, 40.7, 30.2, 20.9), 2.0, 64),   # inside, upscaled
                                              ((-8.4, 90.1, 40.0, 35.5), 4.0, 48),   # leaves the image
                                              ((20.2, 10.6, 90.0, 80.0), 1.5, 32)])  # downscaled
def test_sample_target_is_warpaffine_bilinear_without_rounding(box, factor, out, pad):
    """Same sampling geometry and padding as cv2.warpAffine (INTER_LINEAR): the two differ only by
    OpenCV's uint8 rounding (<= 0.5) and its 1/32-pixel coordinate grid (<= 1/64 px x gradient)."""
    img = _smooth_image()
    patch, r, crop = sample_target(img, box, factor, out, pad=pad)
    shift = 0.5 * r - 0.5
    mat = np.array([[r, 0.0, shift - crop[0] * r], [0.0, r, shift - crop[1] * r]])
    border = cv2.BORDER_REPLICATE if pad == "replicate" else cv2.BORDER_CONSTANT
    value = {"mean": cv2.mean(img)[:3], "zero": (0, 0, 0), "replicate": (0, 0, 0)}[pad] if isinstance(pad, str) else pad
    ref = cv2.warpAffine(img, mat, (out, out), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=value)
    assert patch.dtype == np.float32 and patch.shape == (out, out, 3)
    assert np.abs(patch - ref).max() <= 1.0
    assert np.abs(patch - ref).mean() < 0.5


def test_sample_target_is_continuous_in_the_box():
    """A box moved by 1e-6 px moves the patch by ~1e-6 x the image gradient. (cv2.warpAffine's
    fixed-point grid and uint8 output step by whole grey levels there: in a tracking loop that step
    amplified float rounding ~200-fold per frame, docs/deploy.md "Agreement".)"""
    img = _smooth_image()
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(20):
        box = np.array([rng.uniform(-20, 140), rng.uniform(-20, 100), rng.uniform(10, 60), rng.uniform(10, 60)])
        a, _, _ = sample_target(img, box, 4.0, 64)
        b, _, _ = sample_target(img, box + [1e-6, -1e-6, 1e-6, 0.0], 4.0, 64)
        worst = max(worst, float(np.abs(a - b).max()))
    assert worst < 1e-2  # float32 rounding of values up to 255 (~1.5e-5) plus 1e-6 px x gradient
    # and it does move continuously: 0.01 px gives a small, nonzero change
    c, _, _ = sample_target(img, box + [0.01, 0.0, 0.0, 0.0], 4.0, 64)
    assert 0 < np.abs(a - c).max() < 0.01 * 255


def test_sample_target_pixel_align_snaps_the_window_to_whole_pixels():
    """``align="pixel"`` (OSTrack's and SiamFC's crops): the side is rounded up and the corner to the
    nearest pixel; the patch is the exact crop of that whole-pixel window, and boxes closer together
    than that grid give bit-identical patches (no float difference can enter the next frame)."""
    img = _smooth_image()
    rng = np.random.default_rng(2)
    for _ in range(20):
        box = np.array([rng.uniform(-20, 140), rng.uniform(-20, 100), rng.uniform(10, 60), rng.uniform(10, 60)])
        patch, r, crop = sample_target(img, box, 4.0, 64, mode="siamfc", align="pixel")
        side = math.ceil(crop_side(box, 4.0, "siamfc"))
        assert crop[2] == crop[3] == side and r == 64 / side
        assert crop[0] == math.floor(box[0] + box[2] / 2 - side / 2 + 0.5)
        assert crop[1] == math.floor(box[1] + box[3] / 2 - side / 2 + 0.5)
        exact, _, exact_crop = sample_target(img, crop, 1.0, 64)  # the exact crop of that window
        np.testing.assert_array_equal(exact_crop, crop)
        np.testing.assert_array_equal(patch, exact)
        moved, _, _ = sample_target(img, box + [1e-6, -1e-6, 1e-6, 0.0], 4.0, 64, mode="siamfc", align="pixel")
        np.testing.assert_array_equal(moved, patch)
    # the default stays exact: the window follows the box below a pixel
    _, _, crop = sample_target(img, (10.25, 20.5, 30.0, 30.0), 2.0, 32)
    assert crop[0] == 10.25 + 15.0 - 30.0 and crop[2] == 60.0


def test_crop_config_validates_align():
    assert CropConfig().align == "exact" and CropConfig("pixel").align == "pixel"
    with pytest.raises(ValueError, match="crop.align"):
        CropConfig("nearest")
    from vtrack.models.sparsett.config import SparseTTTrackerConfig

    assert from_dict(SparseTTTrackerConfig, {"crop": {"align": "pixel"}}, "tracker").crop.align == "pixel"
    with pytest.raises(ValueError, match="tracker.crop.align"):
        from_dict(SparseTTTrackerConfig, {"crop": {"align": "round"}}, "tracker")
    with pytest.raises(ValueError, match="align"):
        sample_target(_ramp(), (0, 0, 4, 4), 2.0, 4, align="round")


def test_sample_target_validates():
    img = _ramp()
    with pytest.raises(TypeError, match="output_size"):
        sample_target(img, (0, 0, 4, 4), 2.0, 4.5)
    with pytest.raises(ValueError, match="output_size"):
        sample_target(img, (0, 0, 4, 4), 2.0, 0)
    with pytest.raises(TypeError, match="image"):
        sample_target(img.astype(np.float32), (0, 0, 4, 4), 2.0, 4)
    with pytest.raises(ValueError, match="pad"):
        sample_target(img, (0, 0, 4, 4), 2.0, 4, pad="reflect")
    with pytest.raises(ValueError, match="box_xywh"):
        sample_target(img, (0, 0, np.nan, 4), 2.0, 4)


def test_box_mapping_roundtrip_and_values():
    crop = (10.0, 20.0, 50.0, 50.0)
    box = np.array([20.0, 30.0, 10.0, 5.0])
    inside = box_to_crop(box, crop, 100)  # scale 2
    np.testing.assert_allclose(inside, [20, 20, 20, 10])
    np.testing.assert_allclose(box_from_crop(inside, crop, 100), box)
    batch = np.stack([box, box + 1])
    np.testing.assert_allclose(box_from_crop(box_to_crop(batch, crop, 100), crop, 100), batch)
    with pytest.raises(ValueError, match="crop_box_xywh"):
        box_to_crop(box, (0, 0, 0, 10), 100)


def test_mapping_matches_crop_pixels():
    """A box drawn in the image lands where box_to_crop says in the patch."""
    img = np.zeros((100, 120, 3), np.uint8)
    img[40:60, 50:80] = 255  # box (50, 40, 30, 20)
    patch, _, crop = sample_target(img, (50, 40, 30, 20), 2.0, 98, pad="zero")
    bx = box_to_crop((50, 40, 30, 20), crop, 98)
    ys, xs = np.nonzero(patch[..., 0] > 127)
    assert xs.min() == pytest.approx(bx[0], abs=1) and xs.max() + 1 == pytest.approx(bx[0] + bx[2], abs=1)
    assert ys.min() == pytest.approx(bx[1], abs=1) and ys.max() + 1 == pytest.approx(bx[1] + bx[3], abs=1)


def test_clip_box():
    np.testing.assert_allclose(clip_box((-5, -5, 20, 20), 10, 8), [0, 0, 10, 8])
    np.testing.assert_allclose(clip_box((2, 3, 4, 2), 10, 8), [2, 3, 4, 2])
    # fully outside on the right: kept as a min_size box at the border
    np.testing.assert_allclose(clip_box((15, 2, 4, 2), 10, 8), [9, 2, 1, 2])
    np.testing.assert_allclose(clip_box((15, 2, 4, 2), 10, 8, min_size=2), [8, 2, 2, 2])
    with pytest.raises(ValueError, match="min_size"):
        clip_box((0, 0, 1, 1), 10, 8, min_size=9)
    with pytest.raises(ValueError, match="width"):
        clip_box((0, 0, 1, 1), 0, 8)


def test_hann_window_values():
    w = hann_window(3, 5)
    assert w.shape == (3, 5) and w.dtype == torch.get_default_dtype()
    h3 = torch.tensor([0.5 * (1 - math.cos(2 * math.pi * k / 4)) for k in (1, 2, 3)])  # 0.5, 1, 0.5
    h5 = torch.tensor([0.5 * (1 - math.cos(2 * math.pi * k / 6)) for k in range(1, 6)])
    torch.testing.assert_close(w, torch.outer(h3, h5))
    torch.testing.assert_close(h3, torch.tensor([0.5, 1.0, 0.5]))
    assert hann_window(4, 4, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="h"):
        hann_window(0, 3)


def test_cosine_window_values():
    w = cosine_window(3, 5)
    np.testing.assert_allclose(w, np.outer([0, 1, 0], [0, 0.5, 1, 0.5, 0]), atol=1e-12)
    assert cosine_window(1, 1).tolist() == [[1.0]]
    assert cosine_window(4, 4, dtype=np.float32).dtype == np.float32
    with pytest.raises(TypeError, match="w"):
        cosine_window(3, 2.0)


def _reference_crop(img, crop_box, out, pad):
    """Slow, obviously correct bilinear crop, float64, one output pixel and one tap at a time: output
    pixel (v, u) samples the image at ((u + 0.5) / r + x0 - 0.5, (v + 0.5) / r + y0 - 0.5), r = out / side;
    a tap outside the image reads the padding colour ("replicate": the nearest edge pixel)."""
    x0, y0, side, _ = (float(c) for c in crop_box)
    r = out / side
    H, W = img.shape[:2]
    colour = {"mean": cv2.mean(img)[:3], "zero": (0.0, 0.0, 0.0)}.get(pad, pad) if isinstance(pad, str) else pad
    res = np.zeros((out, out, 3))
    for v in range(out):
        y = (v + 0.5) / r + y0 - 0.5
        for u in range(out):
            x = (u + 0.5) / r + x0 - 0.5
            fy, fx = math.floor(y), math.floor(x)
            for iy, wy in ((fy, 1.0 - (y - fy)), (fy + 1, y - fy)):
                for ix, wx in ((fx, 1.0 - (x - fx)), (fx + 1, x - fx)):
                    if pad == "replicate":
                        pixel = img[min(max(iy, 0), H - 1), min(max(ix, 0), W - 1)]
                    elif 0 <= iy < H and 0 <= ix < W:
                        pixel = img[iy, ix]
                    else:
                        pixel = colour
                    res[v, u] += wy * wx * np.asarray(pixel, dtype=np.float64)
    return res


def _random_crop_cases(n, seed):
    """Random boxes: inside, partly or wholly outside the image, tiny (sub-pixel) and huge crops,
    non-integer positions and sizes, every padding mode."""
    rng = np.random.default_rng(seed)
    pads = ["mean", "zero", "replicate", (10.5, 200.0, 30.25)]
    for i in range(n):
        size = float(np.exp(rng.uniform(np.log(0.05), np.log(400.0))))  # crop sides 0.1 px to ~800 px
        box = (rng.uniform(-150, 260), rng.uniform(-150, 220), size * rng.uniform(0.5, 2), size * rng.uniform(0.5, 2))
        yield box, float(rng.uniform(1.0, 4.0)), int(rng.integers(1, 25)), pads[i % len(pads)]


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_target_equals_slow_reference(seed):
    """The crop equals a per-pixel float64 bilinear reference up to float32 rounding (<= 1e-4 on
    0-255 values), whichever path computes it (C++ op or NumPy)."""
    img = _smooth_image(37, 53, seed)  # odd sizes, so crops leave the image on every side
    worst = 0.0
    for box, factor, out, pad in _random_crop_cases(24, seed):
        patch, r, crop = sample_target(img, box, factor, out, pad=pad)
        assert patch.dtype == np.float32 and patch.shape == (out, out, 3) and r == pytest.approx(out / crop[2])
        worst = max(worst, float(np.abs(patch - _reference_crop(img, crop, out, pad)).max()))
    assert worst <= 1e-4


def test_crop_cpp_op_and_numpy_are_bit_identical():
    """vtrack::bilinear_crop (csrc/cpu/crop_cpu.cpp) and the NumPy path give the same bits, on random
    geometry including large outputs, crops leaving the image and all padding modes."""
    from ext_required import REQUIRE_EXT
    from vtrack.tracking import crops

    op = crops._crop_op()
    if op is None:
        if REQUIRE_EXT:
            pytest.fail("VTRACK_REQUIRE_EXT=1 but torch.ops.vtrack.bilinear_crop is not registered (stale vtrack._C?)")
        pytest.skip("torch.ops.vtrack.bilinear_crop unavailable (vtrack._C not built from these sources)")
    img = _smooth_image(97, 131, 3)
    rng = np.random.default_rng(4)
    for i, (box, factor, out, pad) in enumerate(_random_crop_cases(40, 5)):
        out = out if i % 2 else int(rng.integers(100, 300))
        replicate, value = crops._pad_value(img, pad)
        side = crop_side(box, factor)
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        H, W = img.shape[:2]
        rows = crops._taps(out, cy - side / 2, out / side, H, replicate)
        cols = crops._taps(out, cx - side / 2, out / side, W, replicate)
        for fill in (None, np.asarray(value, dtype=np.float32)):
            ref = crops._weighted_sums_numpy(img, rows, cols, fill)
            t = torch.from_numpy
            got = op(t(img), *map(t, rows), *map(t, cols), None if fill is None else t(fill)).numpy()
            np.testing.assert_array_equal(got, ref)
    with pytest.raises(RuntimeError, match="outside"):
        op(t(img), t(rows[0] + 1000), *map(t, rows[1:]), *map(t, cols), None)
