"""The resource model on known points, its monotonicity in the parallelism factor, the automatic
parallelism against the budget, and the error that names the kernel that does not fit."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.errors import InputError, TargetError
from irc.ir import GraphBuilder
from irc.targets.fpga_hls.boards import BOARDS, RESOURCES, get_board
from irc.targets.fpga_hls.fit import assign_parallelism, budget
from irc.targets.fpga_hls.kernels import plan_kernels
from irc.targets.fpga_hls.precision import parse_precision
from irc.targets.fpga_hls.resources import MEASURED_VECTOR_ADD, estimate, memory_cost, totals
from irc.targets.fpga_hls.slr import Overflow, assign_slrs, slr_share

from .support import cnn_graph, mlp_graph

U200 = get_board("u200")


def _dense_kernel(k: int, n: int, m: int = 1, act: str = "none"):
    b = GraphBuilder("d")
    x = b.input("x", (m, k))
    w = b.param("w", np.ones((k, n), np.float32))
    g = b.build(b.op("gemm_fused", x, w, act=act))
    return plan_kernels(g).kernels[0]


@pytest.mark.parametrize("precision,dsp_per_mac", [("float32", 5), ("ap_fixed<16,6>", 1), ("ap_fixed<18,8>", 1),
                                                   ("ap_fixed<24,8>", 2), ("ap_fixed<32,16>", 4), ("int8", 1)])
@pytest.mark.parametrize("n", [8, 64])
def test_dense_fully_unrolled_costs_dsp_per_mac(precision, dsp_per_mac, n):
    """N MACs per cycle (a dense layer unrolled over its N outputs) cost N DSP-per-MAC of the format,
    plus, in float, the one tree of 2-DSP adders that sums a lane's acc_split partial sums."""
    k = _dense_kernel(16, n)
    prec = parse_precision(precision)
    e = estimate(k, prec, U200, parallelism=n)
    assert e["DSP"] == np.ceil(n * dsp_per_mac) + 2 * (prec.acc_split - 1)
    assert prec.acc_split == (8 if precision == "float32" else 1)


def test_board_totals():
    assert BOARDS["u200"].totals == {"DSP": 6840, "LUT": 1182240, "FF": 2364480, "BRAM": 2160, "URAM": 960}
    assert BOARDS["u250"].totals["DSP"] == 12288 and BOARDS["u280"].totals["DSP"] == 9024
    assert BOARDS["vck5000"].totals["DSP"] == 1968
    assert get_board("Alveo-U280") is BOARDS["u280"]
    with pytest.raises(InputError, match="unknown board 'u9000'"):
        get_board("u9000")


def test_memory_mapping():
    assert memory_cost(16, 32, 1, U200)["BRAM"] == 0 and memory_cost(16, 32, 1, U200)["LUT"] > 0  # LUTRAM
    assert memory_cost(1024, 36, 1, U200)["BRAM"] == 1
    assert memory_cost(2048, 32, 1, U200)["BRAM"] == 2
    assert memory_cost(1024, 32, 4, U200)["BRAM"] == 4  # one block per bank
    big = memory_cost(100 * 784, 32, 1, U200)
    assert big["URAM"] == 20 and big["BRAM"] == 0  # 78,400 x 32 bits: URAM (4K x 72) on a board that has it


@pytest.mark.parametrize("precision", ["float32", "ap_fixed<16,6>"])
def test_monotone_in_parallelism(precision):
    """More lanes never cost less of anything and never take more cycles."""
    prec = parse_precision(precision)
    for g in (cnn_graph(), mlp_graph(sizes=(12, 48, 8))):
        g = irc.compile(g, target="interp", passes=["fuse", "fuse_elementwise"]).graph
        for k in plan_kernels(g).kernels:
            last = None
            for p in k.candidates():
                e = estimate(k, prec, U200, parallelism=p)
                if last is not None:
                    assert all(e[r] >= last[r] for r in RESOURCES), (k.name, p)
                    assert e.cycles <= last.cycles, (k.name, p)
                last = e


@pytest.mark.parametrize("fraction", [0.8, 0.05, 0.04])  # 0.04: the tightest both boards fit at parallelism 1
@pytest.mark.parametrize("board", ["u200", "vck5000"])
def test_auto_parallelism_respects_the_budget(board, fraction):
    g = irc.compile(cnn_graph(), target="interp", passes=["fuse"]).graph
    kernels = plan_kernels(g).kernels
    brd = get_board(board)
    est = assign_parallelism(kernels, parse_precision("float32"), brd, fraction, "auto")
    tot, limit = totals(est), budget(brd, fraction)
    assert all(tot[r] <= limit[r] for r in RESOURCES)
    # every kernel is at its largest factor, or the next one would not fit, or it is negligible
    slowest = max(e.cycles for e in est)
    for i, k in enumerate(kernels):
        bigger = [c for c in k.candidates() if c > k.parallelism]
        if bigger and est[i].cycles * 20 >= slowest:
            trial = estimate(k, parse_precision("float32"), brd, bigger[0])
            assert any(tot[r] - est[i][r] + trial[r] > limit[r] for r in RESOURCES), k.name


def test_auto_grows_with_the_budget():
    g = irc.compile(mlp_graph(sizes=(64, 256, 64)), target="interp", passes=["fuse"]).graph

    def dsp(fraction):
        ks = plan_kernels(g).kernels
        return totals(assign_parallelism(ks, parse_precision("float32"), U200, fraction, "auto"))["DSP"]

    assert dsp(0.02) < dsp(0.2) <= U200.totals["DSP"] * 0.2


def test_fixed_parallelism_rounds_down_to_a_divisor():
    g = irc.compile(mlp_graph(sizes=(12, 48, 8)), target="interp", passes=["fuse"]).graph
    ks = plan_kernels(g).kernels
    assign_parallelism(ks, parse_precision("float32"), U200, 0.8, 7)
    assert [k.parallelism for k in ks] == [6, 4, 4]  # 48 -> 6, 8 -> 4, softmax over 8 -> 4
    assign_parallelism(ks, parse_precision("float32"), U200, 0.8, {ks[0].name: 16})
    assert [k.parallelism for k in ks] == [16, 1, 1]
    with pytest.raises(InputError, match="parallelism"):
        assign_parallelism(ks, parse_precision("float32"), U200, 0.8, "fast")


def test_does_not_fit_names_the_kernel():
    """A dense layer whose weights and batch do not fit the small Versal card: the error names it."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("big")
    x = b.input("x", (64, 4096))
    y = b.op("relu", b.op("gemm", x, b.param("w", rng.standard_normal((4096, 16)).astype(np.float32))))
    y = b.op("gemm", y, b.param("w_big", rng.standard_normal((16, 8)).astype(np.float32)), name="small")
    g = b.build(y)
    with pytest.raises(TargetError) as err:
        irc.compile(g, target="fpga", board="vck5000", fraction=0.1)
    msg = str(err.value)
    assert "does not fit 10% of the VCK5000" in msg and "kernel 'k0_" in msg and "gemm_fused" in msg
    assert err.value.node is not None and err.value.op == "gemm_fused"
    # and a fixed factor beyond the board's DSPs
    with pytest.raises(TargetError, match=r"DSP .*parallelism 16"):
        irc.compile(mlp_graph(sizes=(16, 16, 16)), target="fpga", board="vck5000", parallelism=16, fraction=0.05)


def test_report_table():
    m = irc.compile(cnn_graph(), target="fpga")
    text = m.executable.report()
    assert "Alveo U200" in text and "budget 80% of the device" in text
    for k in m.executable.kernels:
        assert k.name in text
    assert "total" in text and "device" in text and "latency" in text


def test_interface_calibrated_on_the_measured_vector_add():
    """A float32 vector add (two read masters, one write master) against the kernel measured
    after place and route on a U200: LUT and FF within 2%, BRAM exact."""
    b = GraphBuilder("vadd")
    g = b.build(b.op("add", b.input("a", (4096,)), b.input("b", (4096,))))
    g = irc.compile(g, target="interp", passes=["fuse", "fuse_elementwise"]).graph
    (k,) = plan_kernels(g).kernels
    e = estimate(k, parse_precision("float32"), U200, parallelism=1)
    for r in ("LUT", "FF"):
        assert abs(e[r] - MEASURED_VECTOR_ADD[r]) <= 0.02 * MEASURED_VECTOR_ADD[r], r
    assert e["BRAM"] == MEASURED_VECTOR_ADD["BRAM"]


def test_int8_conv_cycles_count_every_tap():
    """An int8 conv runs the fixed-point conv's loop nest (one accumulator per lane in both): the
    same cycles at the same parallelism (each output sums CI/G x KH x KW products, not one)."""
    g = cnn_graph()
    rng = np.random.default_rng(0)
    calib = [{v.name: rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs} for _ in range(2)]
    f = irc.compile(g, target="fpga", precision="ap_fixed<16,6>", parallelism=1).executable
    q = irc.compile(g, target="fpga", precision="int8", calib=calib, parallelism=1).executable
    fconv = [e for k, e in zip(f.kernels, f.estimates) if k.kind == "conv"]
    qconv = [(k, e) for k, e in zip(q.kernels, q.estimates) if k.kind == "qconv"]
    assert fconv and len(fconv) == len(qconv)
    for ef, (k, ei) in zip(fconv, qconv):
        assert k.params["CI"] // k.params["G"] * k.params["KH"] * k.params["KW"] > 1
        assert ei.cycles == ef.cycles


def test_a_kernel_larger_than_one_slr_does_not_fit():
    """2,560 DSPs of one dense layer fit the U200's 6,840 but not one SLR's 2,280."""
    b = GraphBuilder("wide")
    x = b.input("x", (1, 512))
    g = b.build(b.op("gemm", x, b.param("w", np.ones((512, 512), np.float32))))
    with pytest.raises(TargetError, match=r"SLRs of the Alveo U200.*an SLR offers 2,280.*cannot span SLRs"):
        irc.compile(g, target="fpga", board="u200", parallelism=512, fraction=1.0)
    # the automatic search stays within every SLR's share
    m = irc.compile(g, target="fpga", board="u200", fraction=1.0)
    slrs = assign_slrs(m.executable.estimates, U200, 1.0)
    assert not isinstance(slrs, Overflow)
    share = slr_share(U200, 1.0)
    for s in set(slrs):
        used = totals([e for e, t in zip(m.executable.estimates, slrs) if t == s])
        assert all(used[r] <= share[r] for r in RESOURCES)


def test_pooling_cycles_follow_the_memory_ports():
    """pool2d reads a window from one two-port bank per lane: ceil(KH*KW/2) cycles per output;
    global_pool reads its lanes through one AXI port (and a float average carries an 8-cycle
    add), so more lanes do not speed it up and the tuner leaves it at the fewest that reach
    its bound."""
    from irc.targets.fpga_hls.resources import global_pool_ii, pool_ii

    g = irc.compile(cnn_graph(), target="interp", passes=["fuse"]).graph
    ks = plan_kernels(g).kernels
    pool = next(k for k in ks if k.kind == "pool")
    gp = next(k for k in ks if k.kind == "global_pool")
    assert pool_ii(pool) == -(-pool.params["KH"] * pool.params["KW"] // 2)
    f32, fixed = parse_precision("float32"), parse_precision("ap_fixed<16,6>")
    avg = gp.params["AVG"]
    assert global_pool_ii(gp, f32, 1) == (8 if avg else 1) and global_pool_ii(gp, fixed, 1) == 1
    assert global_pool_ii(gp, fixed, 4) == 4
    cands = gp.candidates()
    if len(cands) > 1:
        assert estimate(gp, fixed, U200, cands[1]).cycles == estimate(gp, fixed, U200, cands[0]).cycles
        est = assign_parallelism(ks, fixed, U200, 0.8, "auto")
        assert est[ks.index(gp)].parallelism == 1
