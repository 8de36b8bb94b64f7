"""Float arithmetic on one IR builder, in the short names the math libraries of both LLVM
targets (cpu vecmath, cuda devmath) write their range reductions and polynomials with."""

from __future__ import annotations

from llvmlite import ir


class FloatOps:
    """``add``/``sub``/``mul``/``div``, ``sel`` and ordered comparisons on ``self.b``."""

    b: ir.IRBuilder

    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def sel(self, cond, a, b):
        return self.b.select(cond, a, b)

    def lt(self, a, b):
        return self.b.fcmp_ordered("<", a, b)

    def gt(self, a, b):
        return self.b.fcmp_ordered(">", a, b)

    def eq(self, a, b):
        return self.b.fcmp_ordered("==", a, b)
