"""CPU data-movement kernels (transpose, concat, split, expand, tile, pad) against the
interpreter: hypothesis picks shapes, permutations, axes, pads and element types; a few large
cases take the parallel, memcpy-row and register-tile paths."""

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from irc.errors import ShapeError
from irc.ir import GraphBuilder
from irc.ir.types import DType, TensorType
from tests.support.marks import params
from tests.targets.cpu.arrays import ALL_DTYPES, sample
from tests.targets.harness import assert_matches_interp, one_op_graph

dtypes = st.sampled_from(ALL_DTYPES)
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)


def check(op, xs, attrs):
    assert_matches_interp(one_op_graph(op, [TensorType.of(x) for x in xs], attrs), xs)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=1, max_side=6), dt=dtypes, data=st.data())
def test_transpose(shape, dt, data):
    perm = data.draw(st.permutations(range(len(shape))))
    check("transpose", [sample(shape, dt)], {"perm": tuple(perm)})


@pytest.mark.parametrize("dt", params([DType.f32, DType.f64, DType.f16, DType.bf16, DType.i8, DType.bool],
                                       fast={"f32", "i8"}))
@pytest.mark.parametrize("shape, perm", [((3, 70, 45), (0, 2, 1)), ((40, 3, 66), (2, 1, 0)), ((2, 33, 5, 70), (0, 3, 2, 1))])
def test_transpose_full_and_partial_tiles(dt, shape, perm):
    check("transpose", [sample(shape, dt, seed=3)], {"perm": perm})


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dt=dtypes, data=st.data())
def test_concat_and_split(shape, dt, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    xs = [sample(shape[:axis] + (n,) + shape[axis + 1:], dt, seed=i) for i, n in enumerate(sizes)]
    check("concat", xs, {"axis": axis})
    check("split", [np.concatenate(xs, axis)], {"axis": axis, "sizes": tuple(sizes)})


@settings(max_examples=40, deadline=None)
@given(sh=hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=4, max_side=5), extra=st.integers(0, 2),
       dt=dtypes)
def test_expand(sh, extra, dt):
    out = (2,) * extra + sh.result_shape
    check("expand", [sample(sh.input_shapes[0], dt)], {"shape": out})


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dt=dtypes, data=st.data())
def test_tile(shape, dt, data):
    repeats = tuple(data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape))))
    check("tile", [sample(shape, dt)], {"repeats": repeats})


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6), dt=dtypes,
       mode=st.sampled_from(["constant", "reflect", "edge", "wrap"]),
       value=st.sampled_from([0.0, 1.0, -2.5, 300.0, float("nan"), -float("inf")]), data=st.data())
def test_pad(shape, dt, mode, value, data):
    pads = []
    for _side in ("begin", "end"):
        for d in shape:
            hi = d - 1 if mode == "reflect" else 7
            pads.append(data.draw(st.integers(-d, hi)))
    r = len(shape)
    if any(shape[i] + pads[i] + pads[i + r] < 0 for i in range(r)):
        pads = [max(p, 0) for p in pads]
    x = sample(shape, dt)
    try:
        g = one_op_graph("pad", [TensorType.of(x)], {"pads": tuple(pads), "mode": mode, "value": value})
    except ShapeError:  # a non-constant border of an axis cropped to nothing
        reject()
    with np.errstate(all="ignore"):  # 300.0 wraps in narrow integer types, in numpy as in irc
        assert_matches_interp(g, [x])


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_wider_than_the_input_and_cropped(mode):
    x = sample((3, 4, 5), DType.f32)
    pads = (1, -1, 9, 0, 2, -3) if mode != "reflect" else (1, -1, 4, 0, 2, -3)
    check("pad", [x], {"pads": pads, "mode": mode, "value": 0.5})


def test_concat_of_one_value_twice():
    b = GraphBuilder("twice")
    x = b.input("x", (3, 5))
    assert_matches_interp(b.build(b.op("concat", x, x, axis=1)), [sample((3, 5), DType.f32)])


def test_large_movement_runs_in_parallel():
    x = sample((16, 64, 96), DType.f32, seed=5)
    y = sample((16, 32, 96), DType.f32, seed=6)
    opts = {"threads": 2}
    for op, xs, attrs in [
        ("transpose", [x], {"perm": (2, 0, 1)}),
        ("concat", [x, y], {"axis": 1}),
        ("split", [x], {"axis": 2, "sizes": (40, 56)}),
        ("expand", [x[:1]], {"shape": (16, 64, 96)}),
        ("tile", [y], {"repeats": (2, 1, 3)}),
        ("pad", [x], {"pads": (0, 2, 3, 0, 1, 4), "mode": "reflect", "value": 0.0}),
        ("pad", [x], {"pads": (1, 2, 3, 1, 1, 4), "mode": "constant", "value": 7.0}),
    ]:
        assert_matches_interp(one_op_graph(op, [TensorType.of(a) for a in xs], attrs), xs, **opts)


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_pad_refuses_a_border_on_an_axis_cropped_away(mode):
    """There is nothing to reflect, repeat or wrap: the op refuses before any kernel could
    index an empty axis."""
    with pytest.raises(ShapeError, match="empty after cropping"):
        one_op_graph("pad", [TensorType((1, 4), DType.f32)], {"pads": (0, 1, 0, -4), "mode": mode})
