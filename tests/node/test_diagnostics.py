"""Latency windows and the /diagnostics message round trip."""

import math

from builtin_interfaces.msg import Time

from blendclip_ros.node.diagnostics import LatencyWindow, build_diagnostics, parse_status_values, status_name


def test_window_percentiles_bounded_and_nan_when_empty():
    w = LatencyWindow(size=100)
    assert math.isnan(w.percentiles()[50])
    for v in range(1000):
        w.add(float(v))
    w.add(float('nan'))  # ignored
    assert len(w) == 100
    pct = w.percentiles()
    assert 949 <= pct[50] <= 950 and 998 <= pct[99] <= 999


def test_status_carries_counters_and_percentiles():
    w = LatencyWindow()
    for v in (1.0, 2.0, 3.0):
        w.add(v)
    msg = build_diagnostics('/blendclip', 'cpu', Time(sec=5), 'active', 'ok',
                            {'frames_published': 7, 'frames_dropped': 0}, {'processing': w},
                            extra={'model': 'tiny'})
    status = msg.status[0]
    assert status.name == status_name('/blendclip') and status.level == status.OK
    values = parse_status_values(status)
    assert values['frames_published'] == 7 and values['processing_ms_p50'] == 2.0
    assert values['processing_samples'] == 3 and values['state'] == 'active' and values['model'] == 'tiny'
    inactive = build_diagnostics('/n', 'cpu', Time(), 'inactive', '', {}, {})
    assert inactive.status[0].level == status.WARN


def test_window_percentiles_equal_numpys_over_the_last_samples():
    """The ring + np.partition give np.percentile's (linear) values over exactly the last `size` samples."""
    import numpy as np

    rng = np.random.default_rng(5)
    for size, n in ((1, 1), (1, 5), (7, 3), (7, 7), (7, 23), (2000, 2400), (100000, 2400)):
        w = LatencyWindow(size=size)
        values = rng.exponential(3.0, n)
        for v in values:
            w.add(v)
        kept = values[-size:]
        pct = w.percentiles((0, 50, 90, 99, 100))
        np.testing.assert_allclose([pct[q] for q in (0, 50, 90, 99, 100)],
                                   np.percentile(kept, (0, 50, 90, 99, 100)), rtol=1e-12)
        assert len(w) == len(kept)
    w.clear()
    assert len(w) == 0 and math.isnan(w.percentiles()[99])
    w.add(4.0)
    assert w.percentiles() == {50: 4.0, 99: 4.0}
