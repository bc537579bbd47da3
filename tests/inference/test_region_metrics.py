"""Boundary F1, fragmentation and speckle (ssgan_jax/region_metrics.py): hand-built maps and
brute-force independent computations (pairwise distances, flood fill)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from ssgan_jax.inference.region_metrics import RegionMetrics, boundary, boundary_f1_of_class


def _split_map(h, w, col):
    m = np.zeros((h, w), np.int64)
    m[:, col:] = 1
    return m


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_straight_boundary_shifted_by_k_pixels(k):
    """Class 0 left of column 20, class 1 right of it; the prediction's split is k columns off.
    Boundary pixels of a class are its column next to the split; they are k apart, so F1 is 1
    within the tolerance and 0 beyond it."""
    gt = _split_map(30, 40, 20)
    pred = _split_map(30, 40, 20 + k)
    ignore = np.zeros_like(gt, bool)
    for c in (0, 1):
        assert boundary_f1_of_class(pred, gt, c, ignore, tol=2.0) == (1.0 if k <= 2 else 0.0)
    m = RegionMetrics(2, tolerance=2.0)
    m.add(pred, gt)
    s = m.summary(["left", "right"])
    assert s["boundary_f1"]["mean"] == (1.0 if k <= 2 else 0.0)
    assert s["boundary_f1"]["tolerance_px"] == 2.0
    assert s["fragmentation"]["per_class"] == {"left": 1.0, "right": 1.0}


def test_boundary_pixels_and_the_image_border():
    mask = np.zeros((5, 6), bool)
    mask[1:4, 1:5] = True
    want = mask.copy()
    want[2, 2:4] = False  # interior
    np.testing.assert_array_equal(boundary(mask), want)
    full = np.ones((4, 4), bool)
    assert not boundary(full).any()  # the image border is not a boundary
    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    assert boundary(left)[:, 1].all() and not boundary(left)[:, 0].any()


def test_boundary_on_ignore_pixels_is_dropped_and_empty_sides():
    gt = _split_map(10, 12, 6)
    pred = _split_map(10, 12, 9)  # 3 columns off: no match at tol 1
    ignore = np.zeros_like(gt, bool)
    assert boundary_f1_of_class(pred, gt, 1, ignore, tol=1.0) == 0.0
    # void from column 5 to the right border: the prediction's class-1 boundary (column 9)
    # lies on ignore pixels and the truth has no class 1 outside them: the pair is skipped
    ignore[:, 5:] = True
    assert boundary_f1_of_class(pred, np.where(ignore, 255, gt), 1, ignore, tol=1.0) is None
    # a class next to void has a boundary there (void is outside the class), on its own side
    ignore[:] = False
    ignore[:, 5:8] = True
    gt_void = np.where(ignore, 255, gt)  # class 1 now starts at column 8, next to the void
    pred_8 = _split_map(10, 12, 8)
    assert boundary_f1_of_class(pred_8, gt_void, 1, ignore, tol=0.0) == 1.0
    # one side empty, the other not: 0
    assert boundary_f1_of_class(np.zeros_like(gt), gt, 1, np.zeros_like(ignore), 1.0) == 0.0


def test_n_islands_fragmentation_and_speckle():
    gt = np.zeros((40, 40), np.int64)
    gt[10:30, 10:30] = 1  # one square of class 1
    pred = np.zeros_like(gt)
    for r, c in ((2, 2), (2, 30), (30, 2), (30, 30), (15, 15)):  # 5 islands of 4x4 = 16 px
        pred[r:r + 4, c:c + 4] = 1
    pred[36, 0] = 1  # and a 1-pixel speck touching nothing: 6 islands
    m = RegionMetrics(2, min_region=10)
    m.add(pred, gt)
    s = m.summary()
    assert s["fragmentation"]["per_class"]["1"] == 6.0
    assert s["fragmentation"]["per_class"]["0"] == 1.0  # the background stays one region
    assert s["fragmentation"]["mean"] == 3.5
    # components smaller than 10 px: the speck (1 px) of 40 * 40 predicted pixels
    assert s["speckle"] == pytest.approx(1 / 1600)
    # diagonal neighbours are one 8-connected component
    diag = np.zeros((6, 6), np.int64)
    np.fill_diagonal(diag, 1)
    m = RegionMetrics(2, min_region=1)
    m.add(diag, diag)
    assert m.summary()["fragmentation"]["per_class"]["1"] == 1.0


def test_ignore_pixels_belong_to_no_class_and_defaults():
    gt = np.zeros((20, 20), np.int64)
    gt[:, 10] = 255  # a void column splits class 0 into two regions
    pred = np.zeros_like(gt)  # predicted as one region over the void
    m = RegionMetrics(2)
    m.add(pred, gt)
    s = m.summary()
    assert s["fragmentation"]["per_class"]["0"] == 1.0  # 2 predicted / 2 true
    assert s["fragmentation"]["per_class"]["1"] is None
    assert s["boundary_f1"]["tolerance_px"] == pytest.approx(0.0075 * np.hypot(20, 20))
    assert s["speckle_min_region_px"] == 1  # ceil(0.05% of 400 px)
    with pytest.raises(ValueError, match="class 7 outside"):
        m.add(np.full((4, 4), 7), np.zeros((4, 4), np.int64))


def _flood_components(mask):
    """8-connected components by breadth-first search (independent of scipy.ndimage)."""
    seen = np.zeros_like(mask, bool)
    sizes = []
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        queue, size = collections.deque([start]), 0
        while queue:
            r, c = queue.popleft()
            size += 1
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    q = (r + dr, c + dc)
                    if 0 <= q[0] < mask.shape[0] and 0 <= q[1] < mask.shape[1] and mask[q] \
                            and not seen[q]:
                        seen[q] = True
                        queue.append(q)
        sizes.append(size)
    return sizes


def _brute_f1(pred, label, c, ignore, tol):
    def edge(m):
        out = np.zeros_like(m)
        h, w = m.shape
        for r in range(h):
            for col in range(w):
                if m[r, col] and any(0 <= r + dr < h and 0 <= col + dc < w and not m[r + dr,
                                     col + dc] for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))):
                    out[r, col] = True
        return out & ~ignore

    bp, bg = np.argwhere(edge(pred == c)), np.argwhere(edge(label == c))
    if len(bp) == 0 and len(bg) == 0:
        return None
    if len(bp) == 0 or len(bg) == 0:
        return 0.0
    d = np.sqrt(((bp[:, None, :] - bg[None, :, :]) ** 2).sum(-1))
    p, r = (d.min(1) <= tol).mean(), (d.min(0) <= tol).mean()
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def test_against_brute_force_on_random_maps():
    rng = np.random.default_rng(0)
    C, tol, min_region = 4, 1.5, 5
    m = RegionMetrics(C, tolerance=tol, min_region=min_region)
    f1 = collections.defaultdict(list)
    comps = np.zeros((2, C), np.int64)
    speck = pixels = 0
    for _ in range(4):
        # blocky random maps (upsampled noise) with some void
        label = np.kron(rng.integers(0, C, (6, 7)), np.ones((4, 4), np.int64))[:22, :26]
        pred = np.kron(rng.integers(0, C, (11, 13)), np.ones((2, 2), np.int64))[:22, :26]
        pred[rng.random(pred.shape) < 0.03] = rng.integers(0, C)  # specks
        label[rng.random(label.shape) < 0.05] = 255
        m.add(pred, label)
        ignore = label == 255
        for c in range(C):
            v = _brute_f1(pred, label, c, ignore, tol)
            if v is not None:
                f1[c].append(v)
            sizes = _flood_components((pred == c) & ~ignore)
            comps[0, c] += len(sizes)
            comps[1, c] += len(_flood_components(label == c))
            speck += sum(s for s in sizes if s < min_region)
            pixels += sum(sizes)
    s = m.summary()
    for c in range(C):
        assert s["boundary_f1"]["per_class"][str(c)] == pytest.approx(np.mean(f1[c]))
        assert s["fragmentation"]["per_class"][str(c)] == pytest.approx(comps[0, c] / comps[1, c])
    assert s["speckle"] == pytest.approx(speck / pixels)
    # the sums add over processes: two halves merged equal the whole
    a, b = RegionMetrics(C, tolerance=tol, min_region=min_region), RegionMetrics(
        C, tolerance=tol, min_region=min_region)
    rng = np.random.default_rng(1)
    maps = [(rng.integers(0, C, (9, 9)), rng.integers(0, C, (9, 9))) for _ in range(4)]
    whole = RegionMetrics(C, tolerance=tol, min_region=min_region)
    for i, (p, lab) in enumerate(maps):
        (a if i % 2 else b).add(p, lab)
        whole.add(p, lab)
    merged = RegionMetrics(C, tolerance=tol, min_region=min_region).load_state(
        a.state() + b.state())
    assert merged.summary() == whole.summary()
