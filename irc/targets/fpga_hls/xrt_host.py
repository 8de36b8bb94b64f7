"""The C++ host on XRT's native API (templates/xrt_host.cpp.in): the per-buffer and per-argument
statements that tie buffers to kernel arguments are written out one per line, so that what binds
where can be read (and tested) in the generated source.

XRT allocates an ``xrt::bo`` in the memory group it is given; ``kernel.group_id(arg)`` names the
bank that connectivity.cfg connected that argument to. connectivity.place puts a buffer in one bank
and connects every argument touching it there, so the first argument bound to a buffer gives it.
"""

from __future__ import annotations

from irc.targets.fpga_hls.kernels import Plan


def first_binding(plan: Plan, buffer) -> tuple[int, int] | None:
    """(kernel index, argument index) of the first kernel argument bound to ``buffer``."""
    for ki, k in enumerate(plan.kernels):
        for ai, a in enumerate(k.args):
            if plan.buffer_of(a.value) == buffer:
                return ki, ai
    return None


def render(plan: Plan, order: list, index: dict, fill, **fields) -> str:
    """The host source. ``order``: (value, role) of every buffer in the host's order; ``index``: value -> position;
    ``fill``: project.fill; ``fields``: model, buffers (the BufferSpec rows), fixed_scale, atol, rtol, raw_t."""
    create = []
    for i, (v, role) in enumerate(order):
        where = first_binding(plan, v)
        # a buffer no kernel reads or writes (a graph input that is also an output) goes to bank 0
        ki, ai = where if where is not None else (0, 0)
        bo = f"xrt::bo(device, BUFFERS[{i}].bytes, xrt::bo::flags::normal, kernels[{ki}].group_id({ai}))"
        what = f"{v.name} ({role})" + (f": {plan.kernels[ki].name} argument {ai}" if where else ": bound to no kernel")
        rhs = f"s ? bo[0][{i}] : {bo}" if role == "param" else bo
        create.append(f"        bo[s][{i}] = {rhs};  // {what}")
    args = []
    for ki, k in enumerate(plan.kernels):
        for ai, a in enumerate(k.args):
            args.append(f"        runs[s][{ki}].set_arg({ai}, bo[s][{index[plan.buffer_of(a.value)]}]);"
                        f"  // {k.name}.{a.name}")
    names = "\n".join(f'    "{k.name}",' for k in plan.kernels)
    return fill("xrt_host.cpp.in", nkernels=len(plan.kernels), kernel_names=names, create_bos="\n".join(create),
                set_args="\n".join(args), **fields)

