import pytest

from irc.dist.scaling import Link, fit_link, step_estimate
from irc.errors import InputError


def test_fit_link_recovers_alpha_and_beta():
    true = Link(alpha=20e-6, beta=5e9)
    sizes = [1e3, 1e5, 1e6, 1e7]
    link = fit_link(sizes, [true.allreduce_seconds(s, 4) for s in sizes], 4)
    assert link.alpha == pytest.approx(true.alpha, rel=1e-6)
    assert link.beta == pytest.approx(true.beta, rel=1e-6)


def test_step_estimate_splits_compute_and_divides_comm_by_k():
    link = Link(alpha=0.0, beta=1e9)
    one = step_estimate(0.1, 1e8, 1, link)
    assert one == {"ranks": 1, "step_s": 0.1, "comm_share": 0.0, "speedup": 1.0}
    two = step_estimate(0.1, 1e8, 2, link)  # ring: 2 (n-1)/n * S / beta = 0.1 s
    assert two["step_s"] == pytest.approx(0.05 + 0.1)
    four = step_estimate(0.1, 1e8, 2, link, sync_every=4)
    assert four["step_s"] == pytest.approx(0.05 + 0.025)
    assert four["comm_share"] == pytest.approx(0.025 / 0.075)


def test_fit_link_needs_two_ranks_and_two_points():
    with pytest.raises(InputError):
        fit_link([1, 2], [1, 2], 1)
    with pytest.raises(InputError):
        fit_link([1], [1], 2)
