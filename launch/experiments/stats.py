"""The statistics of the registered studies: a paired t-test of one stated direction, a mean
difference with its 95% confidence interval, the minimal detectable effect of a design, an
equivalence test (TOST), Holm's adjustment and the simulated power of a paired t-test.

Every function takes per-seed paired differences (arm minus control, one number per seed).
"""

from __future__ import annotations

import math
import statistics

ALPHA = 0.05
POWER = 0.8


def _t():
    from scipy import stats

    return stats.t


def paired_test(diffs: list[float], alternative: str = "greater") -> dict[str, float]:
    """Paired t-test of the mean of ``diffs`` against 0: ``alternative`` "greater" (H1: mean
    > 0, one-sided), "less" or "two-sided". Needs at least 2 differences."""
    n = len(diffs)
    if n < 2:
        raise ValueError(f"a paired test needs at least 2 differences; got {n}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be greater, less or two-sided; got {alternative!r}")
    m, s = statistics.fmean(diffs), statistics.stdev(diffs)
    if s == 0:
        t = math.copysign(math.inf, m) if m else 0.0
    else:
        t = m / (s / math.sqrt(n))
    dist = _t()
    if alternative == "greater":
        p = float(dist.sf(t, n - 1))
    elif alternative == "less":
        p = float(dist.cdf(t, n - 1))
    else:
        p = float(2 * dist.sf(abs(t), n - 1))
    return {"n": n, "mean": m, "std": s, "t": t, "p": p, "alternative": alternative}


def estimate(diffs: list[float], level: float = 0.95) -> dict[str, float]:
    """Mean of ``diffs`` with its two-sided ``level`` confidence interval (t distribution)
    and the minimal detectable effect of the same design (``mde``)."""
    n = len(diffs)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 differences; got {n}")
    m, s = statistics.fmean(diffs), statistics.stdev(diffs)
    half = float(_t().ppf(0.5 + level / 2, n - 1)) * s / math.sqrt(n)
    return {"n": n, "mean": m, "std": s, "low": m - half, "high": m + half,
            "mde": mde(s, n, one_sided=False)}


def mde(std: float, n: int, one_sided: bool = True, alpha: float = ALPHA,
        power: float = POWER) -> float:
    """The smallest true mean difference a paired t-test of ``n`` seeds at level ``alpha``
    detects with probability ``power``, given the differences' standard deviation ``std``
    (the usual approximation (t_{1-alpha} + t_{power}) * std / sqrt(n), df = n - 1)."""
    dist = _t()
    a = alpha if one_sided else alpha / 2
    return (float(dist.ppf(1 - a, n - 1)) + float(dist.ppf(power, n - 1))) * std / math.sqrt(n)


def tost(diffs: list[float], margin: float, alpha: float = ALPHA) -> dict[str, float]:
    """Two one-sided paired t-tests (Schuirmann's TOST) of equivalence within ``±margin``:
    H0: |mean| >= margin. ``p`` is the larger of the two one-sided p-values; equivalence is
    shown when p < ``alpha``, which is the same as the ``1 - 2 alpha`` (90%) CI lying inside
    ``(-margin, margin)``."""
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be > 0; got {margin}")
    lower = paired_test([d + margin for d in diffs], "greater")  # mean > -margin
    upper = paired_test([d - margin for d in diffs], "less")  # mean < +margin
    p = max(lower["p"], upper["p"])
    return {"n": len(diffs), "margin": margin, "p_lower": lower["p"], "p_upper": upper["p"],
            "p": p, "equivalent": p < alpha}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (reject where adjusted <
    alpha: the family-wise error rate stays at alpha)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def simulated_power(effect: float, std: float, n: int, alpha: float = ALPHA,
                    sims: int = 20000, seed: int = 0) -> float:
    """The share of ``sims`` simulated studies of ``n`` paired differences ~ N(``effect``,
    ``std``) in which the one-sided paired t-test rejects at ``alpha`` (exact t quantile, no
    normal approximation)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    d = rng.normal(effect, std, size=(sims, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    return float(np.mean(t > float(_t().ppf(1 - alpha, n - 1))))


def seeds_for_power(effect: float, std: float, power: float = POWER, alpha: float = ALPHA,
                    cap: int = 40) -> int:
    """The smallest number of seeds (2..``cap``) whose ``simulated_power`` reaches ``power``;
    ``cap`` when none does."""
    for n in range(2, cap + 1):
        if simulated_power(effect, std, n, alpha) >= power:
            return n
    return cap


def describe(e: dict) -> str:
    """An ``estimate`` as a results page prints it: mean [95% CI] (sd; MDE)."""
    return (f"{e['mean']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}] (sd {e['std']:.2f}; "
            f"detectable with 80% power: ±{e['mde']:.2f})")


def registered_lines(hypothesis: str, comparison: str, diffs: list[float],
                     registered: int, secondary: list[tuple[str, str, str, list[float]]]
                     ) -> list[str]:
    """A registered study's verdict and secondary table, as results-page lines.

    ``diffs``: the primary per-seed differences (test mIoU points at the last checkpoint);
    the test is one-sided (a gain), and ``hypothesis`` counts as supported only with
    p < ALPHA over all ``registered`` seeds (fewer: marked interim). ``secondary``:
    (difference, metric, checkpoint, per-seed differences) rows, estimates without tests."""
    test, est = paired_test(diffs, "greater"), estimate(diffs)
    supported = test["p"] < ALPHA and len(diffs) == registered
    verdict = (
        f"{hypothesis} {'supported' if supported else 'not supported'}: {comparison} is "
        f"{est['mean']:+.2f} test mIoU points at the last checkpoint (95% CI "
        f"[{est['low']:+.2f}, {est['high']:+.2f}]; one-sided paired t = {test['t']:.2f}, "
        f"p = {test['p']:.4f}, n = {test['n']} seeds; success was registered as p < {ALPHA}). "
        f"With the seeds' spread (sd {est['std']:.2f}) this design detects a true gain of "
        f"{mde(est['std'], len(diffs), one_sided=True):.2f} points with 80% power; ")
    verdict += ("a smaller true gain is not excluded." if not supported else
                "the CI bounds how large the gain is.")
    if len(diffs) < registered:
        verdict += " (Interim: the registered test is the one over all registered seeds.)"
    out = ["### Primary (registered)", "", f"**{verdict}**", "",
           "### Secondary (estimates: mean paired difference in points, 95% CI, no tests)", "",
           "| difference | metric | checkpoint | estimate [95% CI] |", "|---|---|---|---|"]
    for difference, metric, checkpoint, d in secondary:
        out.append(f"| {difference} | {metric} | {checkpoint.replace('_', '-')} | "
                   f"{describe(estimate(d))} |")
    return out
