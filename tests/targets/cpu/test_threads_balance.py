"""How the CPU target shares work between threads: a GEMM's grid of (row panels x column
panels) blocks follows its shape (irc.targets.cpu.gemm.grid_for) and small GEMMs stay on the
calling thread; a model compiled for several threads gives bit-identical GEMM and convolution
results at any thread count it runs with (every tile of C is one micro-kernel over the same K
slices); an element-wise map with a short outer dimension is cut into blocks that share out
evenly; and a caller whose chunks are done sleeps, not spins, while another thread finishes."""

from __future__ import annotations

import ctypes
import math
import time

import numpy as np
import pytest

import irc
from irc.ir import GraphBuilder, interpret
from irc.targets.cpu import gemm
from irc.targets.cpu.lowering.ops import pack_panels
from tests.targets.harness import ATOL, RTOL

RNG = np.random.default_rng(16)
AVX2 = gemm.Tile(6, 16, 8)


def _f32(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _grid(m, n, k, threads, tile=AVX2, pack_a=False, pack_b=False):
    return gemm.grid_for(math.ceil(m / tile.mr), math.ceil(n / tile.nr), k, tile, threads, m * n * k, pack_a, pack_b)


def test_many_channels_few_pixels_split_rows():
    """A 3x3 convolution of ResNet-18's last stage at batch 1 as a GEMM (512 x 49 x 4608):
    splitting the columns would have both threads stream all 9 MB of weights; rows halve it."""
    assert _grid(512, 49, 4608, 2) == (2, 1)


def test_wide_output_splits_columns():
    """An early 1x1 convolution (96 channels x 3136 pixels) and a batch-100 dense layer."""
    assert _grid(96, 3136, 24, 2) == (1, 2)
    assert _grid(100, 1024, 1024, 2) == (1, 2)


def test_square_shapes_take_a_two_dimensional_grid_at_four_threads():
    assert _grid(768, 768, 768, 4) == (2, 2)


def test_run_time_packing_weighs_on_the_split():
    """A dense layer packs its activations (A) per thread: splitting columns would have every
    thread pack all of A, so a narrow layer splits rows once packing is counted."""
    assert _grid(100, 64, 1000, 2) == (1, 2)
    assert _grid(100, 64, 1000, 2, pack_a=True) == (2, 1)


def test_small_gemms_stay_on_the_calling_thread():
    m, n, k = 64, 84, 120  # LeNet-5's second dense layer at batch 64: about 20 us on one core
    assert m * n * k < gemm.PARALLEL_MIN_MACS
    assert _grid(m, n, k, 2) == (1, 1)
    assert _grid(64, 64, 256, 1) == (1, 1)


@pytest.mark.parametrize("m,n,k,threads", [(1, 1000, 2048, 2), (30, 17, 9000, 4), (7, 2000, 640, 3),
                                           (4000, 8, 100, 8), (300, 300, 300, 6)])
def test_grid_never_has_more_blocks_than_threads_or_panels(m, n, k, threads):
    assert m * n * k >= gemm.PARALLEL_MIN_MACS
    pm, pn = _grid(m, n, k, threads)
    assert 1 < pm * pn <= threads
    assert pm <= math.ceil(m / AVX2.mr) and pn <= math.ceil(n / AVX2.nr)


def test_largest_block_is_the_cheapest_choice():
    """The chosen grid's largest block costs no more than any other grid's (same thread count)."""
    m, n, k, threads = 250, 150, 500, 4
    mp, np_ = math.ceil(m / AVX2.mr), math.ceil(n / AVX2.nr)
    for packs in [(False, False), (True, False), (False, True), (True, True)]:
        pm, pn = _grid(m, n, k, threads, AVX2, *packs)
        chosen = gemm.block_cost(math.ceil(mp / pm), math.ceil(np_ / pn), k, AVX2, *packs)
        for a in range(1, threads + 1):
            for b in range(1, threads // a + 1):
                assert chosen <= gemm.block_cost(math.ceil(mp / a), math.ceil(np_ / b), k, AVX2, *packs)


def _dense(m, k, n, nr=16):
    b = GraphBuilder("dense")
    x = b.input("x", (m, k))
    w = _f32(k, n, scale=1 / np.sqrt(k))
    g = b.build(b.op("gemm_packed", x, b.param("bp", pack_panels(np.ascontiguousarray(w.T), nr)),
                     b.param("bias", _f32(n)), n=n, act="relu", act_alpha=0.0, act_beta=0.0))
    return g, [_f32(m, k)]


def _conv(n, c, h, w, co, ks, stride, pad):
    b = GraphBuilder("conv")
    x = b.input("x", (n, c, h, w))
    wt = _f32(co, c, *ks, scale=0.1)
    wp = np.stack([pack_panels(wt.reshape(co, -1), 6)])
    g = b.build(b.op("conv_gemm", x, b.param("wp", wp), b.param("bias", _f32(co)), kernel_shape=ks, cout=co,
                     strides=(stride, stride), pads=(pad,) * 4, dilations=(1, 1), group=1, act="relu"))
    return g, [_f32(n, c, h, w)]


CASES = {
    # dense: column split (wide), row split (tall), and a batch-1 row vector
    "dense_wide": lambda: _dense(60, 200, 700),
    "dense_tall": lambda: _dense(700, 300, 40),
    "dense_row_vector": lambda: _dense(1, 2048, 1000),
    # batch-1 convolutions: many channels on few pixels (rows), few channels on many (columns),
    # 1x1 direct (packs the image per thread) and 3x3 through im2col
    "conv_deep": lambda: _conv(1, 64, 7, 7, 200, (3, 3), 1, 1),
    "conv_wide": lambda: _conv(1, 8, 40, 40, 24, (3, 3), 1, 1),
    "conv_1x1_deep": lambda: _conv(1, 160, 7, 7, 320, (1, 1), 1, 0),
    "conv_1x1_wide": lambda: _conv(1, 24, 28, 28, 96, (1, 1), 1, 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bit_identical_at_every_thread_count(case):
    """Compiled for four threads (grids of up to four blocks), run at 1, 2, 3 and 4: the same
    bits every time, and the interpreter's values within the fp32 tolerance."""
    g, feeds = CASES[case]()
    c = irc.compile(g, target="cpu", threads=4)
    c.executable.set_threads(1)
    want = c.run(feeds)[0]
    np.testing.assert_allclose(want, interpret(g, feeds)[0], rtol=RTOL, atol=ATOL)
    for t in (2, 3, 4, 2):
        c.executable.set_threads(t)
        for _ in range(3):
            np.testing.assert_array_equal(c.run(feeds)[0], want, err_msg=f"{case} at {t} threads")


def test_two_thread_build_matches_one_thread_build():
    """The grid changes the order tiles are computed in, never a tile's sums: a model built
    for one thread and one built for two agree bit for bit."""
    g, feeds = _conv(1, 64, 14, 14, 128, (3, 3), 1, 1)
    one = irc.compile(g, target="cpu", threads=1).run(feeds)[0]
    two = irc.compile(g, target="cpu", threads=2).run(feeds)[0]
    np.testing.assert_array_equal(one, two)


@pytest.mark.slow  # four LLVM builds: the compile and the module shown again for each graph
def test_small_gemm_compiles_without_the_pool():
    """Below PARALLEL_MIN_MACS the kernel has no parallel region; above, it has one."""
    small, _ = _dense(4, 32, 40)
    large, _ = _dense(64, 256, 512)
    assert "irc_pool_run" not in irc.compile(small, target="cpu", threads=2).executable.llvm_ir()
    assert "irc_pool_run" in irc.compile(large, target="cpu", threads=2).executable.llvm_ir()


def _rendezvous_module(worker_sleep_us: int):
    """``job()`` runs one job of two chunks that wait for each other (so two threads run them);
    the chunk on the worker then sleeps ``worker_sleep_us`` while the caller has nothing left."""
    from llvmlite import ir

    from irc.targets.cpu import llvm_env, thread_pool
    from irc.targets.llvm import lltypes as T
    from irc.targets.llvm import machine

    m = ir.Module("pool_wait_test")
    tm = llvm_env.target_machine(llvm_env.cpu_spec("host"), jit=True)
    m.triple, m.data_layout = tm.triple, str(tm.target_data)
    started = ir.GlobalVariable(m, T.I64, "started")
    caller = ir.GlobalVariable(m, T.I64, "caller")
    for g in (started, caller):
        g.initializer = ir.Constant(T.I64, 0)
    usleep = ir.Function(m, ir.FunctionType(T.I32, [T.I32]), "usleep")
    self_id = ir.Function(m, ir.FunctionType(T.I64, []), "pthread_self")
    body = ir.Function(m, thread_pool.BODY_TYPE, "body")
    b = ir.IRBuilder(body.append_basic_block("entry"))
    b.atomic_rmw("add", started, ir.Constant(T.I64, 1), "seq_cst")
    tries = b.alloca(T.I64)
    b.store(ir.Constant(T.I64, 0), tries)
    head, wait, go = (body.append_basic_block(x) for x in ("head", "wait", "go"))
    b.branch(head)
    b.position_at_end(head)
    both = b.icmp_signed(">=", b.load_atomic(started, "seq_cst", 8, typ=T.I64), ir.Constant(T.I64, 2))
    n = b.load(tries, typ=T.I64)
    b.cbranch(b.or_(both, b.icmp_signed(">=", n, ir.Constant(T.I64, 2000))), go, wait)
    b.position_at_end(wait)
    b.call(usleep, [ir.Constant(T.I32, 500)])
    b.store(b.add(n, ir.Constant(T.I64, 1)), tries)
    b.branch(head)
    b.position_at_end(go)
    with b.if_then(b.icmp_unsigned("!=", b.call(self_id, []), b.load(caller, typ=T.I64))):
        b.call(usleep, [ir.Constant(T.I32, worker_sleep_us)])
    b.ret_void()
    job = ir.Function(m, ir.FunctionType(T.VOID, []), "job")
    b = ir.IRBuilder(job.append_basic_block())
    b.store(b.call(self_id, []), caller)
    b.store(ir.Constant(T.I64, 0), started)
    b.call(thread_pool.declare_run(m), [body, ir.Constant(T.PTR, None), ir.Constant(T.I64, 2)])
    b.ret_void()
    mod = machine.parse(str(m))
    llvm_env.optimize(mod, tm)
    lib = llvm_env.jit_link(tm.emit_object(mod), ["job", "started"])
    return lib, ctypes.CFUNCTYPE(None)(lib["job"]), ctypes.c_int64.from_address(lib["started"])


def test_caller_sleeps_while_the_last_chunk_runs_elsewhere():
    """A caller whose chunks are done while a worker's chunk still runs (on a shared machine, a
    worker that lost its core) waits without taking CPU: a spinning or yielding caller would
    burn the whole wait (0.3 s here) and, with the CPU shared per process, slow that worker."""
    lib, job, started = _rendezvous_module(300_000)
    for _ in range(3):
        cpu, wall = time.thread_time(), time.perf_counter()
        job()
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        assert started.value == 2
        assert wall >= 0.3, "the worker's chunk did not run on another thread"
        assert cpu < 0.03, f"the caller used {cpu:.3f} s of CPU waiting {wall:.3f} s"
    del lib


def test_short_outer_dimension_is_cut_into_blocks():
    """An element-wise map whose outermost dimension does not share evenly is cut further."""
    from irc.targets.cpu.kernels.elementwise import row_cuts

    assert row_cuts([3, 16384], 2) == 3  # 9 blocks: 5 and 4 per thread instead of rows 2 and 1
    assert row_cuts([4, 16384], 2) == 1  # even already
    assert row_cuts([64, 100], 2) == 1
    assert row_cuts([3, 2], 4) == 2  # never finer than the next dimension
    assert row_cuts([30000], 2) == 1
    assert row_cuts([3, 16384], 1) == 1


@pytest.mark.parametrize("x_shape,y_shape,threads", [
    ((1, 3, 128, 128), (3, 1, 1), 2),  # an image plus a per-channel bias: rows of 3 channels
    ((3, 7, 2000), (3, 1, 2000), 4),  # blocks past the end of a row are empty
    ((5, 7, 33, 40), (1, 7, 1, 40), 2),
])
def test_cut_element_wise_map_matches_the_interpreter(x_shape, y_shape, threads):
    b = GraphBuilder("ew")
    x, y = b.input("x", x_shape), b.input("y", y_shape)
    g = b.build(b.op("mul", b.op("add", x, y), y))
    feeds = [_f32(*x_shape), _f32(*y_shape)]
    c = irc.compile(g, target="cpu", threads=threads, passes=[])
    want = interpret(g, feeds)[0]
    for t in range(1, threads + 1):
        c.executable.set_threads(t)
        np.testing.assert_allclose(c.run(feeds)[0], want, rtol=RTOL, atol=ATOL)
