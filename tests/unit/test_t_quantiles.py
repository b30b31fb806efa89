"""engine.core.stats takes Student's t from scipy.special (what scipy.stats.t calls) so that a run's
process never imports scipy.stats: the same bits, checked here against scipy.stats.t itself."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import t

from engine.core.stats import p_value, t95


def test_t95_and_p_value_are_scipy_stats_t_to_the_bit():
    rng = np.random.default_rng(0)
    dfs = [*range(1, 120), *(float(d) for d in rng.uniform(0.5, 5000, 300))]
    for df in dfs:
        t95.cache_clear()
        assert t95(df) == float(t.ppf(0.975, df)), df
        for mean in rng.uniform(-3, 3, 3):
            lo, hi = mean - 1.5, mean + 0.7
            se = (hi - lo) / (2 * float(t.ppf(0.975, df)))
            assert p_value(float(mean), lo, hi, df) == float(2 * t.sf(abs(mean) / se, df)), (df, mean)
    se = 1.0 / 1.959963984540054  # no df: the normal's quantile, t with 1e9 df for the tail
    assert p_value(1.0, 0.0, 2.0) == float(2 * t.sf(1.0 / se, 1e9))
    assert math.isinf(t95(0)) and math.isnan(p_value(1.0, 2.0, 2.0))
