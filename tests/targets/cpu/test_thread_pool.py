"""The CPU target's thread pool (irc.targets.cpu.thread_pool): every chunk of every job runs
exactly once, whatever the thread count (more threads than cores included), models stay
correct when two Python threads run them at once, and a shared library carries its own pool."""

from __future__ import annotations

import ctypes
import threading

import numpy as np
import pytest
from llvmlite import ir

import irc
import irc.zoo
from irc.targets.cpu import llvm_env, thread_pool
from irc.targets.llvm import lltypes as T
from irc.targets.llvm import machine


def _counting_module():
    """``bench(runs, n)`` runs ``runs`` jobs of ``n`` chunks; chunk k adds 1 to ``counts[k]``."""
    m = ir.Module("pool_test")
    tm = llvm_env.target_machine(llvm_env.cpu_spec("host"), jit=True)
    m.triple, m.data_layout = tm.triple, str(tm.target_data)
    counts = ir.GlobalVariable(m, ir.ArrayType(T.I64, 64 * 8), "counts")
    counts.initializer = ir.Constant(counts.value_type, None)
    body = ir.Function(m, thread_pool.BODY_TYPE, "body")
    b = ir.IRBuilder(body.append_basic_block())
    # one cache line per chunk; atomic so a chunk run twice concurrently would still show
    slot = b.gep(body.args[0], [b.mul(body.args[1], ir.Constant(T.I64, 8))], inbounds=True, source_etype=T.I64)
    b.atomic_rmw("add", slot, ir.Constant(T.I64, 1), "monotonic")
    b.ret_void()
    run = thread_pool.declare_run(m)
    fn = ir.Function(m, ir.FunctionType(T.VOID, [T.I64, T.I64]), "bench")
    b = ir.IRBuilder(fn.append_basic_block())
    runs, n = fn.args
    i = b.alloca(T.I64)
    b.store(ir.Constant(T.I64, 0), i)
    head, loop, done = (fn.append_basic_block(x) for x in ("head", "loop", "done"))
    b.branch(head)
    b.position_at_end(head)
    iv = b.load(i, typ=T.I64)
    b.cbranch(b.icmp_signed("<", iv, runs), loop, done)
    b.position_at_end(loop)
    b.call(run, [body, b.bitcast(counts, T.PTR), n])
    b.store(b.add(iv, ir.Constant(T.I64, 1)), i)
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()
    mod = machine.parse(str(m))
    llvm_env.optimize(mod, tm)
    lib = llvm_env.jit_link(tm.emit_object(mod), ["bench", "counts"])
    bench = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64)(lib["bench"])
    counts = np.ctypeslib.as_array((ctypes.c_int64 * (64 * 8)).from_address(lib["counts"]))
    return lib, bench, counts


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_chunk_runs_exactly_once(n):
    lib, bench, counts = _counting_module()
    runs = 3000
    bench(runs, n)
    assert counts[: 8 * n : 8].tolist() == [runs] * n
    assert not counts[8 * n :].any()
    del lib


def test_two_callers_at_once_each_get_every_chunk():
    """A second caller finds the pool busy and runs its chunks on its own thread."""
    made = [_counting_module() for _ in range(2)]
    runs = 2000
    threads = [threading.Thread(target=bench, args=(runs, 3)) for _, bench, _ in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _, _, counts in made:
        assert counts[: 24 : 8].tolist() == [runs] * 3


def test_model_results_do_not_depend_on_threads():
    """Compiled for 4 threads, run at 1 to 7 (more than this machine's cores): bit-identical
    outputs, since every chunk computes the same sums in the same order."""
    model = irc.zoo.build("lenet5", batch=8)
    x = np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(np.float32)
    c = irc.compile(model, target="cpu", threads=4)
    c.executable.set_threads(1)
    want = c(x)
    for t in (2, 3, 4, 7, 2):
        c.executable.set_threads(t)
        for _ in range(3):
            np.testing.assert_array_equal(c(x), want)


@pytest.mark.slow
def test_models_run_from_several_python_threads():
    model = irc.zoo.build("lenet5", batch=4)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((4, 1, 28, 28)).astype(np.float32) for _ in range(3)]
    compiled = [irc.compile(model, target="cpu", threads=2) for _ in range(3)]
    want = [irc.compile(model, target="interp")(x) for x in xs]
    errors: list[str] = []

    def work(i):
        for _ in range(30):
            got = compiled[i](xs[i])
            if not np.allclose(got, want[i], rtol=1e-4, atol=1e-5):
                errors.append(f"model {i}: largest difference {np.abs(got - want[i]).max()}")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
