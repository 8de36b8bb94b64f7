"""CPU resize vs the interpreter: nearest (every rounding mode) and linear, every coordinate
transform, upsampling and downsampling of any axes, hypothesis-chosen."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.ir.ops.resize import NEAREST_MODES, TRANSFORMS
from irc.ir.types import DType, TensorType
from tests.targets.harness import assert_matches_interp, one_op_graph


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data(), st.sampled_from(["nearest", "linear"]),
       st.sampled_from(TRANSFORMS), st.sampled_from(NEAREST_MODES), st.sampled_from([DType.f32, DType.f64]))
def test_resize(shape, data, mode, transform, nearest_mode, dtype):
    scales = [data.draw(st.sampled_from([1.0, 0.5, 0.6, 1.5, 2.0, 3.0])) for _ in shape]
    if all(int(np.floor(s * d)) >= 1 for s, d in zip(scales, shape)):
        attrs = {"scales": scales}
    else:
        attrs = {"sizes": [data.draw(st.integers(1, 7)) for _ in shape]}
    g = one_op_graph("resize", [TensorType(tuple(shape), dtype)],
                     {"mode": mode, "coordinate_transformation_mode": transform, "nearest_mode": nearest_mode, **attrs})
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype.numpy)
    assert_matches_interp(g, [x])


def test_resize_integer_nearest_and_large_image_in_parallel():
    g = one_op_graph("resize", [TensorType((2, 3, 17, 19), DType.i32)], {"sizes": (2, 3, 40, 33)})
    assert_matches_interp(g, [np.arange(2 * 3 * 17 * 19, dtype=np.int32).reshape(2, 3, 17, 19)], threads=2)
    g = one_op_graph("resize", [TensorType((2, 3, 17, 19), DType.f32)], {"mode": "linear", "sizes": (2, 3, 64, 64)})
    assert_matches_interp(g, [np.random.default_rng(1).standard_normal((2, 3, 17, 19)).astype(np.float32)], threads=2)
