"""The CPU target's thread pool, emitted as LLVM IR: persistent workers that claim chunks.

A parallel loop becomes ``irc_pool_run(body, args, n)``, which runs ``body(args, k, n)`` for
every chunk ``k < n`` and returns when all are done. The caller publishes the job and then
claims chunks itself, like any worker; a worker that is not running at that moment (asleep, or
preempted on a busy machine) simply finds nothing left to claim. So a parallel loop never waits
for a thread that has not started on it, which a fork-join barrier (libgomp's GOMP_parallel)
must: on a loaded or oversubscribed machine that wait costs a scheduler time slice per loop,
and a model with dozens of loops ran hundreds of times slower at 2 threads than at 1.

Protocol. One 64-bit word ``job`` holds ``generation << 32 | n << 16 | next``. A thread
reads it, and if ``next < n`` reads the body and argument pointers and claims chunk ``next``
with a compare-and-swap of ``job`` to ``next + 1``. The caller writes the pointers of a new
job only after every chunk of the previous one has finished, so a successful swap proves the
pointers read before it belong to the claimed generation. Finished chunks count up ``done``;
the caller returns when it reaches ``n``. It spins a short while for the other threads' chunks
(balanced chunks end together), then sleeps on a futex word that whoever finishes the last
chunk bumps and wakes: on a shared machine the thread running that chunk may have lost its core,
and a waiting caller that spun or yielded would take CPU from it (the scheduler shares CPU
between processes, so a process's threads compete with each other). Idle workers spin briefly
(about 0.4 ms: long enough to catch the next parallel loop of the same run, or the next run of a
model called in a loop, short enough that idle threads cost nothing and a process with many of
them exits at once), then sleep on a futex word the caller bumps (and wakes, if anyone sleeps)
with every job.

One pool serves a process (the JIT links one copy and every model calls it); a shared library
built by ``aot.py`` carries its own copy. A second caller arriving while the pool is busy (two
Python threads running models at once, the GIL being released) runs its chunks on its own
thread instead of waiting. Workers are created on first use, up to the largest thread count
asked for; if one cannot be created the callers do its share.
"""

from __future__ import annotations

import contextlib

from llvmlite import ir

from irc.targets.llvm import lltypes as T

#: The entry point generated code calls: void(ptr body, ptr args, i64 nchunks).
RUN = "irc_pool_run"
#: Chunks per job are held in 16 bits of the job word.
MAX_CHUNKS = (1 << 16) - 1
#: MXCSR at thread start: all exceptions masked, round to nearest, no flush-to-zero.
MXCSR_DEFAULT = 0x1F80
#: Most workers the pool creates (threads beyond it share their chunks with the callers).
MAX_WORKERS = 1023
#: Idle spins (each an x86 ``pause``: 10 to 100 ns, about 95 ns on Zen 3) before a worker sleeps.
#: Every spinning worker takes a core from whoever needs it (the caller's serial work, another
#: process, Python's exit), so the spin stays under a millisecond; a later job wakes sleepers by
#: futex (benchmarks/thread_pool_idle.py compares spin counts).
SPIN_BEFORE_SLEEP = 1 << 12
#: Spins of a caller waiting for claimed chunks (about 0.1 ms) before it sleeps until the last one
#: finishes: balanced chunks end well within it on an idle machine (no wake-up latency), and on a
#: busy one a longer spin is CPU taken from the thread running the last chunk.
SPIN_BEFORE_WAIT = 1 << 10

SYS_FUTEX = 202
FUTEX_WAIT_PRIVATE = 128
FUTEX_WAKE_PRIVATE = 129

BODY_TYPE = ir.FunctionType(T.VOID, [T.PTR, T.I64, T.I64])
RUN_TYPE = ir.FunctionType(T.VOID, [T.PTR, T.PTR, T.I64])


def declare_run(module: ir.Module) -> ir.Function:
    """The pool's entry as generated kernels call it (defined by ``define_pool``)."""
    fn = module.globals.get(RUN)
    if fn is None:
        fn = ir.Function(module, RUN_TYPE, RUN)
    return fn


def _store_atomic(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, ordering: str, align: int) -> None:
    """An atomic store (llvmlite's builder method still expects typed pointers)."""
    b._insert(ir.instructions.StoreAtomicInstr(b.block, value, ptr, ordering, align))


class _Indirect:
    """A function pointer as llvmlite's call instruction expects a callee: it reads the
    function type from the callee, which an opaque pointer does not carry."""

    def __init__(self, ptr: ir.Value, fnty: ir.FunctionType):
        self.ptr, self.function_type, self.type = ptr, fnty, ptr.type

    def get_reference(self) -> str:
        return self.ptr.get_reference()


class _Pool:
    """Builds the pool's globals and functions into one module."""

    def __init__(self, module: ir.Module, linkage: str):
        self.m = module
        self.linkage = linkage

        def glob(name, typ):
            g = ir.GlobalVariable(module, typ, f"irc_pool.{name}")
            g.initializer = ir.Constant(typ, None)
            g.linkage = "internal"
            g.align = 64  # each word on its own cache line: callers and workers hammer them
            return g

        self.job, self.done = glob("job", T.I64), glob("done", T.I64)
        self.body, self.args = glob("body", T.PTR), glob("args", T.PTR)
        self.wake_word, self.sleepers = glob("wake", T.I32), glob("sleepers", T.I32)
        self.busy, self.workers = glob("busy", T.I32), glob("workers", T.I32)
        self.generation = glob("generation", T.I64)
        # the caller sleeps on ``finished`` (bumped after the job's last chunk) when ``waiting``
        self.finished, self.waiting = glob("finished", T.I32), glob("waiting", T.I32)
        self.pause = self._decl("llvm.x86.sse2.pause", T.VOID, [])
        self.syscall = self._decl("syscall", T.I64, [T.I64], var_arg=True)
        self.pthread_create = self._decl("pthread_create", T.I32, [T.PTR, T.PTR, T.PTR, T.PTR])
        self.pthread_detach = self._decl("pthread_detach", T.I32, [T.I64])

    def _decl(self, name, ret, args, var_arg=False):
        fn = self.m.globals.get(name)
        return fn if fn is not None else ir.Function(self.m, ir.FunctionType(ret, args, var_arg=var_arg), name)

    @staticmethod
    def aload(b: ir.IRBuilder, g: ir.GlobalVariable, ordering: str) -> ir.Value:
        """An atomic load of one of the pool's words."""
        t = g.value_type
        return b.load_atomic(g, ordering, 8 if isinstance(t, ir.PointerType) else t.width // 8, typ=t)

    @staticmethod
    def c64(v: int) -> ir.Constant:
        return ir.Constant(T.I64, v)

    @staticmethod
    def c32(v: int) -> ir.Constant:
        return ir.Constant(T.I32, v)

    def _fn(self, name: str, typ: ir.FunctionType, linkage: str = "internal") -> tuple[ir.Function, ir.IRBuilder]:
        fn = self.m.globals.get(name)
        if fn is None:
            fn = ir.Function(self.m, typ, name)
        fn.linkage = linkage
        fn.attributes.add("nounwind")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    @contextlib.contextmanager
    def _loop(self, b: ir.IRBuilder, name: str):
        """An endless loop; yields (continue block, exit block)."""
        head = b.append_basic_block(f"{name}.head")
        done = b.append_basic_block(f"{name}.exit")
        b.branch(head)
        b.position_at_end(head)
        yield head, done
        if not b.block.is_terminated:
            b.branch(head)
        b.position_at_end(done)

    def try_claim(self) -> ir.Function:
        """i1 try_claim(): claim and run one chunk of the current job; false if none is left."""
        fn, b = self._fn("irc_pool.try_claim", ir.FunctionType(T.I1, []))
        with self._loop(b, "cas") as (head, _):
            word = self.aload(b, self.job, "seq_cst")
            n = b.and_(b.lshr(word, self.c64(16)), self.c64(0xFFFF))
            k = b.and_(word, self.c64(0xFFFF))
            with b.if_then(b.icmp_unsigned(">=", k, n)):
                b.ret(ir.Constant(T.I1, 0))
            body = self.aload(b, self.body, "monotonic")
            args = self.aload(b, self.args, "monotonic")
            pair = b.cmpxchg(self.job, word, b.add(word, self.c64(1)), "seq_cst", "seq_cst")
            with b.if_then(b.extract_value(pair, 1)):
                self.call_body(b, body, [args, k, n])
                before = b.atomic_rmw("add", self.done, self.c64(1), "seq_cst")
                # The job's last chunk: wake its caller if it went to sleep (see ``run``).
                last = b.icmp_signed("==", b.add(before, self.c64(1)), n)
                with b.if_then(last):
                    with b.if_then(b.icmp_signed("!=", self.aload(b, self.waiting, "seq_cst"), self.c32(0))):
                        b.atomic_rmw("add", self.finished, self.c32(1), "seq_cst")
                        self.futex(b, FUTEX_WAKE_PRIVATE, self.c32(1), self.finished)
                b.ret(ir.Constant(T.I1, 1))
            b.branch(head)
        b.unreachable()
        return fn

    @staticmethod
    def call_body(b: ir.IRBuilder, body: ir.Value, args: list[ir.Value]) -> None:
        """Call through the loaded pointer ``body`` (llvmlite needs the callee's type on it)."""
        b.call(_Indirect(body, BODY_TYPE), args)

    def claimable(self, b: ir.IRBuilder) -> ir.Value:
        word = self.aload(b, self.job, "seq_cst")
        n = b.and_(b.lshr(word, self.c64(16)), self.c64(0xFFFF))
        return b.icmp_unsigned("<", b.and_(word, self.c64(0xFFFF)), n)

    def futex(self, b: ir.IRBuilder, op: int, val: ir.Value, word: ir.GlobalVariable | None = None) -> None:
        word = self.wake_word if word is None else word
        b.call(self.syscall, [self.c64(SYS_FUTEX), word, self.c32(op), val, ir.Constant(T.PTR, None),
                              ir.Constant(T.PTR, None), self.c32(0)])

    def worker(self, try_claim: ir.Function) -> ir.Function:
        """ptr worker(ptr): claim chunks forever; spin a while when idle, then sleep. A new thread
        inherits its creator's MXCSR, which may be a flush-to-zero model's mid-run: the worker
        starts from the default (no FTZ/DAZ), and FTZ bodies set and restore it per chunk."""
        fn, b = self._fn("irc_pool.worker", ir.FunctionType(T.PTR, [T.PTR]))
        spins = b.alloca(T.I64)
        b.store(self.c64(0), spins)
        mxcsr = b.alloca(T.I32)
        b.store(self.c32(MXCSR_DEFAULT), mxcsr)
        b.call(self._decl("llvm.x86.sse.ldmxcsr", T.VOID, [T.PTR]), [mxcsr])
        with self._loop(b, "work") as (head, _):
            with b.if_then(b.call(try_claim, [])):
                b.store(self.c64(0), spins)
                b.branch(head)
            s = b.add(b.load(spins, typ=T.I64), self.c64(1))
            b.store(s, spins)
            with b.if_then(b.icmp_unsigned("<", s, self.c64(SPIN_BEFORE_SLEEP))):
                b.call(self.pause, [])
                b.branch(head)
            # Sleep: register as a sleeper, then re-check; the caller bumps the wake word after
            # publishing a job and then reads the sleeper count, so one of the two sees the other.
            seen = self.aload(b, self.wake_word, "seq_cst")
            b.atomic_rmw("add", self.sleepers, self.c32(1), "seq_cst")
            with b.if_else(self.claimable(b)) as (then, otherwise):
                with then:
                    pass
                with otherwise:
                    self.futex(b, FUTEX_WAIT_PRIVATE, seen)
            b.atomic_rmw("sub", self.sleepers, self.c32(1), "seq_cst")
            b.store(self.c64(0), spins)
        b.unreachable()
        return fn

    def ensure_workers(self, worker: ir.Function) -> ir.Function:
        """void ensure_workers(i64 wanted): start workers until ``wanted`` exist (caller holds busy)."""
        fn, b = self._fn("irc_pool.ensure_workers", ir.FunctionType(T.VOID, [T.I64]))
        wanted = fn.args[0]
        wanted = b.select(b.icmp_signed(">", wanted, self.c64(MAX_WORKERS)), self.c64(MAX_WORKERS), wanted)
        handle = b.alloca(T.I64)
        with self._loop(b, "spawn") as (_, done):
            have = b.zext(b.load(self.workers, typ=T.I32), T.I64)
            with b.if_then(b.icmp_signed(">=", have, wanted)):
                b.branch(done)
            rc = b.call(self.pthread_create, [handle, ir.Constant(T.PTR, None), worker, ir.Constant(T.PTR, None)])
            with b.if_then(b.icmp_signed("!=", rc, self.c32(0))):
                b.branch(done)  # no more threads to be had: callers do the remaining share
            b.call(self.pthread_detach, [b.load(handle, typ=T.I64)])
            b.store(b.trunc(b.add(have, self.c64(1)), T.I32), self.workers)
        b.ret_void()
        return fn

    def run(self, try_claim: ir.Function, ensure_workers: ir.Function) -> ir.Function:
        fn, b = self._fn(RUN, RUN_TYPE, self.linkage)
        body, args, n = fn.args
        n = b.select(b.icmp_signed(">", n, self.c64(MAX_CHUNKS)), self.c64(MAX_CHUNKS), n)
        # The pool taken (another Python thread is running a model) or one chunk: run inline.
        pair = b.cmpxchg(self.busy, self.c32(0), self.c32(1), "acquire", "monotonic")
        inline = b.or_(b.not_(b.extract_value(pair, 1)), b.icmp_signed("<=", n, self.c64(1)))
        with b.if_then(inline):
            with b.if_then(b.extract_value(pair, 1)):
                _store_atomic(b, self.c32(0), self.busy, "release", 4)
            with self._inline_loop(b, n) as k:
                self.call_body(b, body, [args, k, n])
            b.ret_void()
        b.call(ensure_workers, [b.sub(n, self.c64(1))])
        gen = b.add(b.load(self.generation, typ=T.I64), self.c64(1))
        b.store(gen, self.generation)
        _store_atomic(b, self.c64(0), self.done, "seq_cst", 8)
        _store_atomic(b, body, self.body, "monotonic", 8)
        _store_atomic(b, args, self.args, "monotonic", 8)
        word = b.or_(b.shl(b.and_(gen, self.c64(0xFFFFFFFF)), self.c64(32)), b.shl(n, self.c64(16)))
        _store_atomic(b, word, self.job, "seq_cst", 8)
        b.atomic_rmw("add", self.wake_word, self.c32(1), "seq_cst")
        with b.if_then(b.icmp_signed(">", self.aload(b, self.sleepers, "seq_cst"), self.c32(0))):
            self.futex(b, FUTEX_WAKE_PRIVATE, self.c32(0x7FFFFFFF))
        with self._loop(b, "mine") as (_, done):
            with b.if_then(b.not_(b.call(try_claim, []))):
                b.branch(done)
        spins = b.alloca(T.I64)
        b.store(self.c64(0), spins)
        with self._loop(b, "wait") as (_, done):
            with b.if_then(b.icmp_signed(">=", self.aload(b, self.done, "seq_cst"), n)):
                b.branch(done)
            s = b.add(b.load(spins, typ=T.I64), self.c64(1))
            b.store(s, spins)
            with b.if_else(b.icmp_unsigned("<", s, self.c64(SPIN_BEFORE_WAIT))) as (then, otherwise):
                with then:
                    b.call(self.pause, [])
                with otherwise:
                    # Sleep until the last chunk ends: announce it, then re-check ``done``; the
                    # finisher adds to ``done`` and then reads ``waiting``, so one sees the other.
                    seen = self.aload(b, self.finished, "seq_cst")
                    _store_atomic(b, self.c32(1), self.waiting, "seq_cst", 4)
                    with b.if_then(b.icmp_signed("<", self.aload(b, self.done, "seq_cst"), n)):
                        self.futex(b, FUTEX_WAIT_PRIVATE, seen, self.finished)
                    _store_atomic(b, self.c32(0), self.waiting, "seq_cst", 4)
        _store_atomic(b, self.c32(0), self.busy, "release", 4)
        b.ret_void()
        return fn

    @contextlib.contextmanager
    def _inline_loop(self, b: ir.IRBuilder, n: ir.Value):
        k = b.alloca(T.I64)
        b.store(self.c64(0), k)
        with self._loop(b, "inline") as (_, done):
            i = b.load(k, typ=T.I64)
            with b.if_then(b.icmp_signed(">=", i, n)):
                b.branch(done)
            yield i
            b.store(b.add(i, self.c64(1)), k)


def define_pool(module: ir.Module, linkage: str = "external") -> ir.Function:
    """Define the pool in ``module``; its entry ``irc_pool_run`` gets ``linkage`` (internal for a
    shared library that carries its own pool)."""
    p = _Pool(module, linkage)
    claim = p.try_claim()
    return p.run(claim, p.ensure_workers(p.worker(claim)))


def jit_pool_address(use_cache: bool = True) -> int:
    """Address of the process's pool (built, or read from the compile cache when ``use_cache``,
    and linked once; kept for the process's life)."""
    if _process_pool:
        return _process_pool[0][RUN]
    from irc.targets.cpu import compile_cache, llvm_env
    from irc.targets.llvm import machine

    spec = llvm_env.cpu_spec("host")
    tm = llvm_env.target_machine(spec, jit=True)

    def build() -> bytes:
        module = ir.Module(name="irc_pool")
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        define_pool(module)
        mod = machine.parse(str(module))
        llvm_env.optimize(mod, tm)
        return tm.emit_object(mod)

    key = {"target": "cpu-jit-pool", "cpu": spec.name, "features": spec.features, "triple": tm.triple}
    obj = compile_cache.cached_object(key, build) if use_cache else build()
    library = llvm_env.link_object(obj, [RUN])
    _process_pool.append(library)  # the pool's code must outlive every model that calls it
    return library[RUN]


_process_pool: list = []
