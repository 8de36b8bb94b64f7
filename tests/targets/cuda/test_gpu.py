"""On a GPU: every kernel case against the interpreter (f32 within rtol 1e-3; f16/bf16 within
the bounds their cases state), the example models against onnxruntime, CUDA graph replay, the
int8 path bit for bit. Every test here skips with "no CUDA GPU/driver" when there is none."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc import zoo
from irc.ir import interpret
from irc.passes.pipeline import run_pipeline
from tests.targets.cuda.cases import CASES
from tests.targets.cuda.support import compare, requires_gpu, train_convnet

pytestmark = [pytest.mark.gpu, requires_gpu]

F32_RTOL, F32_ATOL = 1e-3, 1e-4


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kernel_matches_interpreter_on_gpu(case):
    g = case.graph()
    data = case.data(g)
    exe = irc.compile(g, target="cuda", debug=True)
    compare(exe.run(data), interpret(g, data), max(case.rtol, F32_RTOL), max(case.atol, F32_ATOL), case.id)


@pytest.mark.parametrize("name,batch", [("lenet5", 4), ("mlp", 100), ("small_resnet", 2), ("resnet18", 1),
                                        ("mobilenet_v2", 1), ("vgg_cifar", 2)])
def test_example_model_matches_onnxruntime(name, batch, ort_run):
    model = zoo.build(name, batch=batch)
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}}
    want = ort_run(model, feeds)
    got = irc.compile(model, target="cuda").run(feeds)
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, rtol=F32_RTOL, atol=F32_ATOL * max(1.0, float(np.abs(e).max())))


def test_cuda_graph_replay_equals_stream_launches():
    model = zoo.build("mlp", batch=8)
    x = np.random.default_rng(1).standard_normal((8, 784)).astype(np.float32)
    plain = irc.compile(model, target="cuda")(x)
    graphed = irc.compile(model, target="cuda", graphs=True)
    np.testing.assert_array_equal(graphed(x), plain)
    np.testing.assert_array_equal(graphed(x), plain)  # replayed twice over the same arena


def test_int8_graph_is_bit_exact():
    g = irc.load_onnx(zoo.build("lenet5", batch=2))
    rng = np.random.default_rng(2)
    calib = {g.inputs[0].name: rng.standard_normal((8, 1, 28, 28)).astype(np.float32)}
    q = run_pipeline(g, ["dead_code", "fold_constants", "fold_batchnorm", "calibrate", "quantize"],
                     options={"calib": calib})
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(irc.compile(q, target="cuda")(x), interpret(q, [x])[0])


def test_session_is_reused_and_timed():
    c = irc.compile(zoo.build("lenet5", batch=1), target="cuda")
    x = np.ones((1, 1, 28, 28), np.float32)
    first = c(x)
    session = c.executable.session()
    np.testing.assert_array_equal(c(x), first)
    assert c.executable.session() is session
    times = session.time_ms(5)
    assert len(times) == 5 and all(t > 0 for t in times)


def test_wrong_input_shape_is_refused_before_the_gpu():
    c = irc.compile(zoo.build("lenet5", batch=1), target="cuda")
    with pytest.raises(irc.IRCError):
        c(np.ones((1, 2, 28, 28), np.float32))


def test_training_steps_equal_the_cpu_target():
    cpu, _ = train_convnet("cpu")
    gpu, _ = train_convnet("cuda")
    np.testing.assert_allclose(gpu["loss"], cpu["loss"], rtol=1e-4)
