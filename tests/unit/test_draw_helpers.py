"""Pure drawing helpers of the app: formatting, downsampling, smoothing, sparklines, colour scale."""

import math
import time
from array import array

import pytest

from freeze_tui.draw import fmt
from freeze_tui.draw.colors import heat_position, heat_style
from freeze_tui.draw.series import BARS, bucket_bounds, bucket_centers, bucket_means, finite_pairs, smooth, sparkline

NAN = math.nan


@pytest.mark.parametrize(
    "seconds, expected",
    [(0.42, "0.42s"), (12.34, "12.3s"), (245, "4m 05s"), (7380, "2h 03m"), (NAN, "–"), (None, "–"), (-1, "0.00s")],
)
def test_duration(seconds, expected):
    assert fmt.duration(seconds) == expected


def test_numbers():
    assert fmt.num(3.14159) == "3.142"
    assert fmt.num(NAN) == fmt.DASH
    assert fmt.count(124_439_808) == "124.4M"
    assert fmt.count(950) == "950"
    assert fmt.count(12_300) == "12.3k"
    assert fmt.pct(0.253) == "25.3 %"
    assert fmt.signed_pts(0.031) == "+3.1 pts"
    assert fmt.ci(0.45, 0.41, 0.49) == "45.0 % [41.0, 49.0]"
    assert fmt.ci(0.45, 0.45, 0.45) == "45.0 %"
    assert fmt.rate(1234.4) == "1,234 tok/s"


def test_norm_format_stays_short():
    assert fmt.norm(0.0) == "0"
    assert fmt.norm(0.0234567) == "0.0235"
    assert fmt.norm(1.5e-5) == "1.50e-05"
    assert all(len(fmt.norm(x)) <= 8 for x in (1e-9, 0.5, 12.25, 999.9, 12345.0))


def test_bucket_bounds_cover_everything_once():
    for n, k in [(10, 3), (1000, 1000), (1001, 1000), (7, 100), (0, 10)]:
        bounds = bucket_bounds(n, k)
        assert len(bounds) == min(n, k)
        covered = [i for a, b in bounds for i in range(a, b)]
        assert covered == list(range(n))


def test_bucket_means_and_centers():
    assert bucket_means([1.0, 3.0, 5.0, 7.0], 2) == [2.0, 6.0]
    assert bucket_centers(4, 2) == [0, 2]
    means = bucket_means([1.0, NAN, NAN, NAN], 2)
    assert means[0] == 1.0 and math.isnan(means[1])


def test_downsampling_a_million_points_is_fast():
    values = array("d", (math.sin(i / 1000) for i in range(1_000_000)))
    start = time.perf_counter()
    means = bucket_means(values, 1000)
    assert time.perf_counter() - start < 0.5
    assert len(means) == 1000


def test_smooth_is_an_ema_that_skips_nan():
    out = smooth([1.0, NAN, 3.0], span=1.0)
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == 3.0  # span 1: no smoothing
    out = smooth([0.0, 10.0], span=3.0)
    assert out == [0.0, 5.0]


def test_finite_pairs():
    assert finite_pairs([1.0, 2.0, NAN], [NAN, 4.0, 5.0]) == ([2.0], [4.0])


def test_sparkline():
    assert sparkline([1.0, 2.0, 3.0, 4.0], 4) == "▁▃▆█"
    assert sparkline([2.0, 2.0], 2) == BARS[0] * 2
    assert sparkline([1.0, NAN], 2) == "▁ "
    assert len(sparkline(list(range(1000)), 10)) == 10
    assert sparkline([], 5) == "" and sparkline([1.0], 0) == ""


def test_heat_scale_is_logarithmic_and_bounded():
    assert heat_position(1e-3, 1e-3, 1e-1) == 0.0
    assert heat_position(1e-1, 1e-3, 1e-1) == 1.0
    assert heat_position(1e-2, 1e-3, 1e-1) == pytest.approx(0.5)
    assert heat_position(0.0, 1e-3, 1e-1) == 0.0
    assert heat_position(NAN, 1e-3, 1e-1) == 0.0
    assert heat_style(1e-1, 1e-3, 1e-1) != heat_style(1e-3, 1e-3, 1e-1)


def test_screenshot_name_is_a_safe_file_name():
    when = time.strptime("2024-05-06 07:08:09", "%Y-%m-%d %H:%M:%S")
    assert fmt.screenshot_name("run/../x [y]", when) == "freeze-tui-run_.._x_y_-20240506-070809.svg"
    assert fmt.screenshot_name("", when).startswith("freeze-tui-run-")


# -- issue 14, case 16 ---------------------------------------------------------------------------------------
def test_a_share_interval_stays_within_0_and_1():
    from engine.core.stats import mean_ci95

    mean, low, high = mean_ci95([0.0, 0.9], 0.0, 1.0)  # two samples: the t interval is far wider than [0, 1]
    assert mean == 0.45 and (low, high) == (0.0, 1.0)
    assert mean_ci95([0.0, 0.9])[1] < -0.5  # unclipped, for values that are not shares
