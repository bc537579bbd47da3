"""One example's augmentation (data/augment.py), by value on hand-made images."""

import numpy as np
import pytest

from ssgan_jax.data.augment import eval_example, train_example

# mean 0, std 1: the normalised image is the uint8 image / 255, easy to read
PLAIN = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def _draws(seed):
    """The generator's draws in train_example's order: scale, flip, crop row, crop column."""
    return np.random.default_rng(seed)


def test_scale_by_two_is_bilinear_at_pixel_centres_and_nearest_for_labels():
    image = np.zeros((2, 2, 3), np.uint8)
    image[:, 1] = 200  # columns 0, 200
    label = np.array([[1, 2], [3, 4]], np.uint8)
    x, y, sizes = train_example(image, label, _draws(0), crop_size=(4, 4),
                                scale_range=(2.0, 2.0), flip=False, **PLAIN)
    # output centres at (j + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped at the edges):
    # 0, 0.75 * 0 + 0.25 * 200, 0.25 * 0 + 0.75 * 200, 200
    np.testing.assert_allclose(x[..., 0] * 255, np.tile([0, 50, 150, 200], (4, 1)), atol=0.5)
    np.testing.assert_array_equal(y, np.repeat(np.repeat([[1, 2], [3, 4]], 2, 0), 2, 1))
    assert y.dtype == np.int32 and x.dtype == np.float32 and sizes.tolist() == [4, 4]


def test_a_small_image_is_padded_with_the_mean_and_ignore_at_the_bottom_right():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 2, 3)).astype(np.uint8)
    label = np.array([[0, 1], [2, 3], [4, 5]], np.uint8)
    data = {"mean": (0.5, 0.25, 0.75), "std": (0.2, 0.3, 0.4)}
    x, y, sizes = train_example(image, label, _draws(1), crop_size=(5, 4),
                                scale_range=(1.0, 1.0), flip=False, **data)
    want = (image - 255 * np.array(data["mean"])) / (255 * np.array(data["std"]))
    np.testing.assert_allclose(x[:3, :2], want, rtol=1e-6)
    assert (x[3:] == 0).all() and (x[:, 2:] == 0).all()  # 0 = the mean colour, normalised
    np.testing.assert_array_equal(y[:3, :2], label)
    assert (y[3:] == 255).all() and (y[:, 2:] == 255).all()
    assert sizes.tolist() == [3, 2]


def test_crops_are_windows_at_the_drawn_offsets_covering_every_offset():
    image = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    label = np.arange(36, dtype=np.uint8).reshape(6, 6)
    offsets = set()
    for seed in range(200):
        rng = _draws(seed)
        rng.uniform(1.0, 1.0)
        rng.random()  # (the flip draw, made even when flips are off)
        oy, ox = int(rng.integers(0, 5)), int(rng.integers(0, 4))
        x, y, sizes = train_example(image, label, _draws(seed), crop_size=(2, 3),
                                    scale_range=(1.0, 1.0), flip=False, **PLAIN)
        np.testing.assert_allclose(x * 255, image[oy:oy + 2, ox:ox + 3], atol=1e-4)
        np.testing.assert_array_equal(y, label[oy:oy + 2, ox:ox + 3])
        assert sizes.tolist() == [2, 3]
        offsets.add((oy, ox))
    assert offsets == {(r, c) for r in range(5) for c in range(4)}


def test_flip_mirrors_image_and_label_together_half_of_the_time():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    label = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    flipped = 0
    for seed in range(20):
        rng = _draws(seed)
        rng.uniform(1.0, 1.0)
        flip = rng.random() < 0.5
        x, y, _ = train_example(image, label, _draws(seed), crop_size=(2, 3),
                                scale_range=(1.0, 1.0), flip=True, **PLAIN)
        want_x, want_y = (image[:, ::-1], label[:, ::-1]) if flip else (image, label)
        np.testing.assert_allclose(x * 255, want_x, atol=1e-4)
        np.testing.assert_array_equal(y, want_y)
        flipped += flip
    assert 0 < flipped < 20


def test_an_unlabelled_image_is_augmented_as_a_labelled_one():
    image = np.random.default_rng(2).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    args = {"crop_size": (16, 24), "scale_range": (0.5, 1.5), "flip": True, **PLAIN}
    for seed in range(5):
        x, y, s = train_example(image, np.zeros((30, 40), np.uint8), _draws(seed), **args)
        xu, yu, su = train_example(image, None, _draws(seed), **args)
        np.testing.assert_array_equal(x, xu)
        np.testing.assert_array_equal(s, su)
        assert yu is None and y.shape == (16, 24)


def test_eval_example_pads_to_the_canvas_with_a_mask():
    image = np.full((3, 2, 3), 51, np.uint8)
    label = np.array([[0, 1], [2, 255], [4, 5]], np.uint8)
    x, y, mask = eval_example(image, label, eval_size=(4, 5), **PLAIN)
    assert x.shape == (4, 5, 3) and y.shape == (4, 5) and mask.shape == (4, 5)
    np.testing.assert_allclose(x[:3, :2], 0.2)
    assert (x[3:] == 0).all() and (x[:, 2:] == 0).all()
    np.testing.assert_array_equal(y[:3, :2], label)
    assert (y[3:] == 255).all() and (y[:, 2:] == 255).all()
    assert mask[:3, :2].all() and mask.sum() == 6
    with pytest.raises(ValueError, match="does not fit"):
        eval_example(image, label, eval_size=(2, 5), **PLAIN)
