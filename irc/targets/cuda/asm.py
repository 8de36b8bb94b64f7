"""GPU instructions kernels use beyond plain arithmetic, in one place with their host emulation:

- ``dp4a``: four 8-bit products summed into a 32-bit accumulator (NVVM's ``idp4a`` intrinsic,
  sm_61+); on the host an IR function with the same arithmetic;
- ``mma_m16n8k16``: the warp-wide tensor-core product (inline PTX ``mma.sync.aligned.m16n8k16``,
  sm_80+; f16 or bf16 inputs, f32 accumulators). Each of the 32 lanes holds a slice of the
  operands in registers, in the layout the PTX ISA fixes (see mma.py); on the host the lanes meet
  in Python, which forms the 16x8 product from their slices the same way.
"""

from __future__ import annotations

import ctypes
import re

import numpy as np
from llvmlite import ir

from irc.targets.llvm import lltypes as T

# ------------------------------------------------------------------------------------------ dp4a


def dp4a(k, a: ir.Value, b: ir.Value, c: ir.Value, a_signed: bool, b_signed: bool) -> ir.Value:
    """c + sum of the four byte products of a and b (bytes signed or not as given)."""
    name = f"llvm.nvvm.idp4a.{'s' if a_signed else 'u'}.{'s' if b_signed else 'u'}"
    fn = k.mod.declare_raw(name, T.I32, [T.I32, T.I32, T.I32])
    return k.b.call(fn, [a, b, c])


def _host_dp4a(sa: str, sb: str) -> str:
    ext_a = "sext" if sa == "s" else "zext"
    ext_b = "sext" if sb == "s" else "zext"
    lines = [f'define internal i32 @"sim.dp4a.{sa}.{sb}"(i32 %a, i32 %b, i32 %c) alwaysinline {{']
    acc = "%c"
    for i in range(4):
        lines += [f"  %as{i} = lshr i32 %a, {8 * i}", f"  %at{i} = trunc i32 %as{i} to i8",
                  f"  %ae{i} = {ext_a} i8 %at{i} to i32",
                  f"  %bs{i} = lshr i32 %b, {8 * i}", f"  %bt{i} = trunc i32 %bs{i} to i8",
                  f"  %be{i} = {ext_b} i8 %bt{i} to i32",
                  f"  %p{i} = mul i32 %ae{i}, %be{i}", f"  %s{i} = add i32 {acc}, %p{i}"]
        acc = f"%s{i}"
    lines += [f"  ret i32 {acc}", "}"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- mma

MMA_BF16 = 0
MMA_F16 = 1
_MMA_TEXT = {
    MMA_BF16: "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
    MMA_F16: "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
}
_MMA_RET = ir.LiteralStructType([T.F32] * 4)


def mma_m16n8k16(k, which: int, a: list[ir.Value], b: list[ir.Value], c: list[ir.Value]) -> list[ir.Value]:
    """D = A (16x16) B (16x8) + C over one warp: a = 4 i32 registers (8 halves of A), b = 2 i32
    (4 halves of B), c = 4 f32; returns the 4 f32 of D this lane holds."""
    text = _MMA_TEXT[which] + " {$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};"
    fty = ir.FunctionType(_MMA_RET, [T.I32] * 6 + [T.F32] * 4)
    asm = ir.InlineAsm(fty, text, "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f", side_effect=True)
    r = k.b.call(asm, [*a, *b, *c])
    return [k.b.extract_value(r, i) for i in range(4)]


_MMA_CALL = re.compile(
    r'(%"[^"]+") = call \{float, float, float, float\} asm sideeffect "mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.'
    r'(bf16|f16)\.\2\.f32[^"]*", "[^"]*"\(i32 ([^,]+), i32 ([^,]+), i32 ([^,]+), i32 ([^,]+), i32 ([^,]+), '
    r'i32 ([^,]+), float ([^,]+), float ([^,]+), float ([^,]+), float ([^)]+)\)')


def host_rewrite(s: str) -> str:
    """IR text with GPU-only instructions replaced by host definitions (emulate.py)."""
    used = sorted(set(re.findall(r'@"llvm\.nvvm\.idp4a\.([su])\.([su])"', s)))
    for sa, sb in used:
        s = s.replace(f'@"llvm.nvvm.idp4a.{sa}.{sb}"', f'@"sim.dp4a.{sa}.{sb}"')
        s = re.sub(rf'^declare i32 @"sim\.dp4a\.{sa}\.{sb}".*$', "", s, flags=re.M)
        s += "\n" + _host_dp4a(sa, sb) + "\n"
    n = [0]

    def repl(m: re.Match) -> str:
        n[0] += 1
        res, kind = m.group(1), m.group(2)
        args = m.groups()[2:]
        which = MMA_BF16 if kind == "bf16" else MMA_F16
        slot = f'%"sim.mma{n[0]}"'
        lines = [f"{slot} = alloca [10 x i32]"]
        for j, v in enumerate(args):
            p = f'%"sim.mma{n[0]}.p{j}"'
            lines.append(f"{p} = getelementptr i32, ptr {slot}, i32 {j}")
            ty = "i32" if j < 6 else "float"
            lines.append(f"store {ty} {v}, ptr {p}")
        lines.append(f'call void @"irc_sim_asm"(ptr %"sim.ctx", i32 {which}, ptr {slot})')
        vals = []
        for j in range(4):
            p = f'%"sim.mma{n[0]}.q{j}"'
            v = f'%"sim.mma{n[0]}.v{j}"'
            lines.append(f"{p} = getelementptr float, ptr {slot}, i32 {6 + j}")
            lines.append(f"{v} = load float, ptr {p}")
            vals.append(v)
        agg = "undef"
        for j, v in enumerate(vals):
            name = res if j == 3 else f'%"sim.mma{n[0]}.a{j}"'
            lines.append(f"{name} = insertvalue {{float, float, float, float}} {agg}, float {v}, {j}")
            agg = name
        return "\n  ".join(lines)

    return _MMA_CALL.sub(repl, s)


def emulate(which: int, thread, data: int) -> None:
    """One lane's part of an mma on the host: lanes deposit their fragments, one lane forms
    D = A B + C for the warp, and every lane takes its four results. Consecutive mmas of a warp
    alternate between two deposit slots, so a fast lane's next deposit never overwrites
    fragments or results a slow lane still needs (two barrier waits per mma)."""
    regs = (ctypes.c_uint32 * 10).from_address(data)
    blk = thread.block
    wb = blk.warp_barriers[thread.warp]
    turn = blk.asm_slots.get(("turn", thread.warp, thread.lane), 0)
    blk.asm_slots[("turn", thread.warp, thread.lane)] = turn ^ 1
    store = blk.asm_slots.setdefault((thread.warp, turn), [None] * 32)
    store[thread.lane] = [regs[j] for j in range(10)]
    if wb.wait() == 0:
        blk.asm_slots[("d", thread.warp, turn)] = _warp_mma(which, store)
    wb.wait()
    d = blk.asm_slots[("d", thread.warp, turn)]
    g, t4 = thread.lane >> 2, thread.lane & 3
    out = (ctypes.c_float * 10).from_address(data)
    for j, (r, c_) in enumerate(((g, 2 * t4), (g, 2 * t4 + 1), (g + 8, 2 * t4), (g + 8, 2 * t4 + 1))):
        out[6 + j] = float(d[r, c_])


def _halves(word: int, which: int) -> tuple[float, float]:
    lo, hi = word & 0xFFFF, word >> 16
    if which == MMA_F16:
        v = np.array([lo, hi], np.uint16).view(np.float16).astype(np.float32)
    else:
        v = (np.array([lo, hi], np.uint32) << 16).view(np.float32)
    return float(v[0]), float(v[1])


def _warp_mma(which: int, lanes: list) -> np.ndarray:
    """The PTX ISA's fragment layout for m16n8k16 (.row.col, 16-bit inputs, f32 accumulators)."""
    a = np.zeros((16, 16), np.float32)
    b = np.zeros((16, 8), np.float32)
    c = np.zeros((16, 8), np.float32)
    for lane, regs in enumerate(lanes):
        g, t4 = lane >> 2, lane & 3
        for r, (row, col) in enumerate(((g, 2 * t4), (g + 8, 2 * t4), (g, 2 * t4 + 8), (g + 8, 2 * t4 + 8))):
            a[row, col], a[row, col + 1] = _halves(regs[r], which)
        for r, krow in enumerate((2 * t4, 2 * t4 + 8)):
            b[krow, g], b[krow + 1, g] = _halves(regs[4 + r], which)
        f = np.array(regs[6:10], np.uint32).view(np.float32)
        c[g, 2 * t4], c[g, 2 * t4 + 1], c[g + 8, 2 * t4], c[g + 8, 2 * t4 + 1] = f
    return a.astype(np.float64) @ b.astype(np.float64) + c
