"""The cuda target: PTX from the IR through llvmlite's NVPTX back end, run through pycuda.

    irc.compile(model, target="cuda")                   # runs on the GPU at first call
    irc compile model.onnx --target cuda -o build/      # PTX per architecture + launch plans, no GPU needed

Layout: ``arch`` (architectures), ``kernel`` (the kernel builder), ``kernels/`` (one module per op
family), ``codegen`` (graph -> module + launch plan), ``plan`` (the launch plan and its checks),
``ptx`` (LLVM -> PTX, ptxas), ``devmath`` (exp, log, sin... in IR), ``asm`` (dp4a, mma),
``kernels/`` = elementwise, gemm (SIMT tiles), mma (tensor cores), linalg, conv, pool, rows +
reduce (warp-per-row reductions, softmax, norms), movement, quant (dp4a int8), backward;
``runtime`` (pycuda), ``emulate`` (host emulation for tests), ``artifact`` (the build directory),
``multi`` (multi-GPU data parallelism: plans and memory levels).

How PTX is generated: LLVM IR built with llvmlite, PTX written by LLVM's NVPTX back end
------------------------------------------------------------------------------------------
The alternative was CUDA C that irc prints and NVRTC or nvcc compiles. Measured on the 2-core
build machine (benchmarks/cuda_ptx_choice.py reproduces it):

    generator                 arch   one SGEMM kernel   ResNet-18 module   GEMM regs / spills
    llvmlite NVPTX (irc)      sm_80       0.42 s             2.1 s            114 / 0
    llvmlite NVPTX (irc)      sm_90       0.44 s             2.0 s            123 / 0
    CUDA C + nvcc -ptx        sm_80       1.03 s               -              127 / 0
    CUDA C + nvcc -ptx        sm_90       0.99 s               -              147 / 0

(the same 128x128x8 tiling, 8x8 per thread, double-buffered shared memory, both ways; times
are medians, nvcc's include its process start, which NVRTC would save; the ResNet-18 module is
all 18 kernels of the fused graph, IR building included). The two are on par: nvcc's front end
is no faster and its GEMM needs no fewer registers.

What decided it:
- **No toolkit at compile time.** llvmlite is already irc's dependency and its LLVM carries the
  NVPTX back end, so ``irc compile --target cuda`` works on any machine, GPU or not; CUDA C needs
  nvcc or NVRTC (the CUDA toolkit, or cuda-python's NVRTC wheel) wherever irc compiles. At run
  time only the driver is needed: it JIT-compiles PTX for the exact GPU.
- **One way of writing kernels.** The CPU target already builds LLVM IR with llvmlite; the GPU
  kernels are built on the same layer (irc.targets.llvm: types, a base kernel builder, and the
  scalar semantics table both targets share, one definition of what ``sigmoid`` or ``cast`` computes).
- **Nothing is lost.** Tensor-core ``mma.sync`` and any other instruction LLVM does not model
  are inline PTX in the IR, exactly as they would be inline asm in CUDA C; ``dp4a``, shuffles,
  barriers and special registers are NVVM intrinsics; shared memory is address space 3.
- **What it costs.** libdevice (CUDA's math library) is not available without the toolkit, so
  irc writes its own device math (devmath.py, a few hundred lines, tested against numpy on the
  host); and LLVM's NVPTX back end is a little less tuned than NVIDIA's own front end for
  register allocation of very large unrolled kernels (ptxas still allocates registers; the
  numbers above compare the two on the same GEMM tiling).

Options (``irc.compile(..., target="cuda", **options)``, ``--opt`` on the command line):
``arch`` (``sm_80``, or a list / comma-separated names; default: the running GPU's, and
sm_70, sm_80, sm_90 for ``-o``), ``device`` (GPU index), ``graphs`` (capture the launches as a
CUDA graph), ``ftz`` (flush f32 denormals, default on), ``emulate`` (run on the host emulator:
slow, for tests on machines without a GPU).
"""

from __future__ import annotations

from typing import Any

from irc.errors import InputError, TargetError
from irc.ir.graph import Graph
from irc.passes.pipeline import when
from irc.targets.base import Target
from irc.targets.cuda.arch import DEFAULT_ARCHS, Arch, arch_list


class CudaExecutable:
    """A graph compiled for NVIDIA GPUs: code per architecture (made on demand), the weights
    blob, and, once it first runs, a session on one GPU (or on the host emulator)."""

    def __init__(self, graph: Graph, options: dict[str, Any]):
        from irc.targets.cuda.codegen import check_legal, memory_plan_for_cuda, weights_blob

        self.graph = graph
        self.options = dict(options)
        self.archs: tuple[Arch, ...] = arch_list(options.get("arch") or DEFAULT_ARCHS)
        for a in self.archs:
            check_legal(graph, a)
        self.memory = memory_plan_for_cuda(graph, options.get("mem", "mid_mem"))
        self.weights = weights_blob(graph, self.memory)
        self._codes: dict[str, Any] = {}
        self._session = None
        # the first architecture is generated now, so that errors surface at compile time
        self.code(self.archs[0])

    def code(self, arch: Arch | str):
        """The CudaCode (IR, PTX, launch plan) for ``arch``, generated once."""
        from irc.targets.cuda.arch import get_arch
        from irc.targets.cuda.codegen import generate

        arch = get_arch(arch) if isinstance(arch, str) else arch
        c = self._codes.get(arch.name)
        if c is None:
            c = generate(self.graph, arch, ftz=bool(self.options.get("ftz", True)), plan=self.memory)
            self._codes[arch.name] = c
        return c

    def code_for_device(self, arch: Arch):
        return self.code(arch)

    @property
    def plan(self):
        return self.code(self.archs[0]).plan

    def ptx(self, arch: Arch | str | None = None) -> str:
        return self.code(arch or self.archs[0]).ptx

    def save(self, path) -> list:
        """Write PTX per architecture, launch plans, weights and a README into directory ``path``."""
        from irc.targets.cuda import artifact

        return artifact.write(self, path)

    def session(self):
        if self._session is None:
            if self.options.get("emulate"):
                from irc.targets.cuda.emulate import EmulatedDevice

                c = self.code(self.archs[0])
                self._session = EmulatedDevice(c.plan, c.ir, self.weights)
            else:
                from irc.targets.cuda.runtime import GpuSession

                self._session = GpuSession(self, int(self.options.get("device") or 0),
                                           graphs=bool(self.options.get("graphs")))
        return self._session

    def run(self, inputs):
        import numpy as np

        s = self.session()
        if self.options.get("emulate"):
            outs = [np.empty(v.shape, v.dtype.numpy) for v in self.graph.outputs]
            s.run([np.ascontiguousarray(a) for a in inputs], outs)
            return outs
        return s.run(inputs)


class CudaTarget(Target):
    name = "cuda"
    options: dict[str, Any] = {"arch": None, "device": 0, "graphs": False, "ftz": True, "emulate": False,
                               "mem": "mid_mem"}

    PIPELINE = ("dead_code", "fold_constants", "inline_control", "fold_batchnorm", "recognise_activations", "fuse",
                "fuse_elementwise", *when("ftz", "flush_denormals"))

    def build(self, graph: Graph, options: dict[str, Any]) -> CudaExecutable:
        opts = dict(options)
        if opts.get("arch") is None and not opts.get("emulate"):
            opts["arch"] = _running_arch_or_default()
        if not isinstance(opts.get("device", 0), int) or opts.get("device", 0) < 0:
            raise InputError(f"device must be a GPU index (0, 1, ...), got {opts.get('device')!r}")
        from irc.targets.cuda.multi import MEM_LEVELS

        if opts.get("mem", "mid_mem") not in MEM_LEVELS:
            raise InputError(f"mem must be one of {', '.join(MEM_LEVELS)}, got {opts.get('mem')!r}")
        return CudaExecutable(graph, opts)


def _running_arch_or_default():
    """The GPU's architecture when one is present (and listed first), else the default list."""
    try:
        from irc.targets.cuda.runtime import device_arch

        return (device_arch(0).name,)
    except TargetError:
        return DEFAULT_ARCHS
