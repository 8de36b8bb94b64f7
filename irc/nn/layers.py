"""Layers: the building blocks of an irc.nn Model (Keras-style functional API).

    x = nn.Input((1, 28, 28))                      # shapes leave out the batch axis; NCHW
    h = nn.Conv2D(6, 5, activation="relu")(x)
    h = nn.Flatten()(nn.MaxPool2D(2)(h))
    y = nn.Dense(10, activation="softmax")(h)
    model = nn.Model(x, y)

Calling a layer on symbolic tensors (:class:`Symbol`) records the connection and builds the
layer's weights for those shapes. A layer's ``forward(ctx, *xs)`` is written with traced
tensors (irc.trace): the model traces it into an inference graph (weights as parameters) or,
inside the train step, into the forward half of the step (weights as state). ``ctx`` says which:
``ctx.training``, ``ctx.weight(layer, name)``, ``ctx.dropout_mask(layer, shape, rate)``,
``ctx.update(layer, name, value)`` for non-trainable state (batch-norm statistics) and
``ctx.note_logits(output, logits, kind)`` so a loss can start from the logits of a final softmax
or sigmoid (the fused, numerically stable form).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irc.errors import InputError, ModelError
from irc.frontend.trace import Tensor, concatenate, reshape
from irc.nn import initializers


class Symbol:
    """A symbolic tensor: the output of a layer call, with its shape (batch axis left out)."""

    def __init__(self, layer: Layer, inbound: tuple[Symbol, ...], shape: tuple[int, ...]):
        self.layer = layer
        self.inbound = inbound
        self.shape = tuple(int(d) for d in shape)

    def __repr__(self) -> str:
        return f"Symbol({self.layer.name or type(self.layer).__name__}, shape={list(self.shape)})"


class Layer:
    """Base layer. Subclasses set ``n_inputs`` (None: any number) and implement
    ``output_shape``, ``forward`` and, if they have weights, ``build``."""

    n_inputs: int | None = 1

    def __init__(self, name: str | None = None):
        self.name = name
        self.weights: dict[str, np.ndarray] = {}
        self.trainable: list[str] = []  # names of weights the optimizer updates; the rest is state
        self.built = False
        self.input_shapes: list[tuple[int, ...]] | None = None

    # -- graph construction -------------------------------------------------------------
    def __call__(self, *inputs) -> Symbol:
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        if not inputs or not all(isinstance(s, Symbol) for s in inputs):
            raise ModelError(f"layer {self.label} must be called on nn.Input(...) or other layers' outputs")
        if self.n_inputs is not None and len(inputs) != self.n_inputs:
            raise ModelError(f"layer {self.label} takes {self.n_inputs} input(s), got {len(inputs)}")
        shapes = [s.shape for s in inputs]
        if self.input_shapes is not None and shapes != self.input_shapes:
            raise ModelError(f"layer {self.label} was built for inputs {self.input_shapes}, now called on {shapes}")
        try:
            out = self.output_shape(*shapes)
        except ModelError as e:
            raise ModelError(f"layer {self.label}: {e.detail}") from None
        self.input_shapes = shapes
        return Symbol(self, tuple(inputs), out)

    @property
    def label(self) -> str:
        return f"'{self.name}' ({type(self).__name__})" if self.name else type(self).__name__

    def output_shape(self, *shapes: tuple[int, ...]) -> tuple[int, ...]:
        return shapes[0]

    def build(self, rng: np.random.Generator) -> None:
        """Create ``self.weights`` for ``self.input_shapes``."""

    def add_weight(self, name: str, shape, init, fan_in: int, fan_out: int, rng, trainable: bool = True) -> None:
        self.weights[name] = initializers.get(init)(shape, fan_in, fan_out, rng, f"{self.name}.{name}")
        if trainable:
            self.trainable.append(name)

    def forward(self, ctx, *xs: Tensor) -> Tensor:
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments (JSON-able) that rebuild this layer."""
        return {"name": self.name}


def _activation(ctx, x: Tensor, act: str | None) -> Tensor:
    if act is None or act == "linear":
        return x
    if act == "softmax":
        y = ctx.tracer.op("softmax", x, axis=-1)
        ctx.note_logits(y, x, "softmax")
        return y
    if act == "sigmoid":
        y = ctx.tracer.op("sigmoid", x)
        ctx.note_logits(y, x, "sigmoid")
        return y
    return ctx.tracer.op(act, x)


_ACTIVATIONS = (None, "linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "selu", "softplus")


def _check_activation(act):
    if act not in _ACTIVATIONS:
        raise InputError(f"unknown activation {act!r} (known: {', '.join(str(a) for a in _ACTIVATIONS[1:])})")
    return act


class Input(Symbol):
    """A model input of ``shape`` (without the batch axis), float32."""

    def __init__(self, shape: Sequence[int], name: str | None = None):
        super().__init__(InputLayer(tuple(shape), name), (), tuple(shape))


class InputLayer(Layer):
    n_inputs = 0

    def __init__(self, shape: tuple[int, ...], name: str | None = None):
        super().__init__(name)
        self.shape = tuple(int(d) for d in shape)
        if any(d < 1 for d in self.shape):
            raise InputError(f"input shape {list(self.shape)} must have positive dimensions")

    def config(self) -> dict:
        return {"name": self.name, "shape": list(self.shape)}


class Dense(Layer):
    """y = activation(x @ W + b); x is (batch, in); W (in, units); one gemm node."""

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", name: str | None = None):
        super().__init__(name)
        self.units = int(units)
        self.activation = _check_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def output_shape(self, shape):
        if len(shape) != 1:
            raise ModelError(f"Dense takes (batch, features) inputs, got a sample shape {list(shape)}; add Flatten()")
        return (self.units,)

    def build(self, rng):
        n_in = self.input_shapes[0][0]
        self.add_weight("kernel", (n_in, self.units), self.kernel_initializer, n_in, self.units, rng)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, n_in, self.units, rng)

    def forward(self, ctx, x):
        w = ctx.weight(self, "kernel")
        args = (x, w, ctx.weight(self, "bias")) if self.use_bias else (x, w)
        return _activation(ctx, ctx.tracer.op("gemm", *args), self.activation)

    def config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer.config(),
                "bias_initializer": self.bias_initializer.config()}


Linear = Dense


def _pair(v, what: str) -> tuple[int, int]:
    t = (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)
    if len(t) != 2 or any(a < 1 for a in t):
        raise InputError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return t


def _padding(padding, kernel, dilation) -> tuple[int, int, int, int]:
    """ONNX pads (top, left, bottom, right) for 'valid', 'same' (stride 1 semantics) or ints."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        total = [(k - 1) * d for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
    if isinstance(padding, (int, np.integer)) or (isinstance(padding, (tuple, list)) and len(padding) in (2, 4)):
        p = (int(padding),) * 2 if isinstance(padding, (int, np.integer)) else tuple(int(a) for a in padding)
        return p + p if len(p) == 2 else p
    raise InputError(f"padding must be 'valid', 'same', an int or a pair/quad of ints, got {padding!r}")


def _out_size(size, k, s, pb, pe, d):
    return (size + pb + pe - (k - 1) * d - 1) // s + 1


class Conv2D(Layer):
    """2-D convolution over (batch, C, H, W) with ``filters`` output channels, ``kernel_size``,
    ``strides``, ``padding`` ('valid', 'same' or explicit), ``dilation`` and ``groups``."""

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", dilation=1, groups: int = 1,
                 activation: str | None = None, use_bias: bool = True, kernel_initializer="he_uniform",
                 bias_initializer="zeros", name: str | None = None):
        super().__init__(name)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation = _pair(dilation, "dilation")
        self.padding = padding
        self.pads = _padding(padding, self.kernel_size, self.dilation)
        self.groups = int(groups)
        self.activation = _check_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ModelError(f"Conv2D takes (batch, channels, height, width) inputs, got a sample shape {list(shape)}")
        c = shape[0]
        if c % self.groups or self.filters % self.groups:
            raise ModelError(f"groups={self.groups} must divide the input channels ({c}) and filters ({self.filters})")
        out = [_out_size(shape[1 + i], self.kernel_size[i], self.strides[i], self.pads[i], self.pads[2 + i],
                         self.dilation[i]) for i in range(2)]
        if min(out) < 1:
            raise ModelError(f"kernel {list(self.kernel_size)} does not fit the input {list(shape)} "
                             f"with padding {self.padding!r}")
        return (self.filters, *out)

    def build(self, rng):
        c = self.input_shapes[0][0]
        kh, kw = self.kernel_size
        fan_in = c // self.groups * kh * kw
        fan_out = self.filters // self.groups * kh * kw
        self.add_weight("kernel", (self.filters, c // self.groups, kh, kw), self.kernel_initializer, fan_in, fan_out, rng)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, fan_in, fan_out, rng)

    def forward(self, ctx, x):
        args = [x, ctx.weight(self, "kernel")] + ([ctx.weight(self, "bias")] if self.use_bias else [])
        y = ctx.tracer.op("conv", *args, strides=self.strides, pads=self.pads, dilations=self.dilation, group=self.groups)
        return _activation(ctx, y, self.activation)

    def config(self):
        return {"name": self.name, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding if isinstance(self.padding, str) else list(self.pads),
                "dilation": list(self.dilation), "groups": self.groups, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer.config(),
                "bias_initializer": self.bias_initializer.config()}


class _Pool2D(Layer):
    op = ""

    def __init__(self, pool_size=2, strides=None, padding="valid", name: str | None = None):
        super().__init__(name)
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides if strides is not None else pool_size, "strides")
        self.padding = padding
        self.pads = _padding(padding, self.pool_size, (1, 1))

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ModelError(f"{type(self).__name__} takes (batch, channels, height, width) inputs, got {list(shape)}")
        out = [_out_size(shape[1 + i], self.pool_size[i], self.strides[i], self.pads[i], self.pads[2 + i], 1)
               for i in range(2)]
        if min(out) < 1:
            raise ModelError(f"pool {list(self.pool_size)} does not fit the input {list(shape)}")
        return (shape[0], *out)

    def forward(self, ctx, x):
        extra = {"count_include_pad": 0} if self.op == "average_pool" else {}
        return ctx.tracer.op(self.op, x, kernel_shape=self.pool_size, strides=self.strides, pads=self.pads, **extra)

    def config(self):
        return {"name": self.name, "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else list(self.pads)}


class MaxPool2D(_Pool2D):
    """Maximum over pool_size windows (stride defaults to the window)."""

    op = "max_pool"


class AvgPool2D(_Pool2D):
    """Mean over pool_size windows; padding does not count."""

    op = "average_pool"


class GlobalAvgPool2D(Layer):
    """Mean over height and width: (batch, C, H, W) -> (batch, C)."""

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ModelError(f"GlobalAvgPool2D takes (batch, channels, height, width) inputs, got {list(shape)}")
        return (shape[0],)

    def forward(self, ctx, x):
        return reshape(ctx.tracer.op("global_average_pool", x), x.shape[:2])


class BatchNorm(Layer):
    """Batch normalization over axis 1 (features of (batch, F), channels of (batch, C, H, W)).

    Training: normalized with the batch's mean and (biased) variance; the moving averages are
    updated as ``moving = momentum * moving + (1 - momentum) * batch_stat`` (the variance's
    unbiased estimate), as graph state. Inference and export: the ``batch_norm`` op with the
    moving averages."""

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5, name: str | None = None):
        super().__init__(name)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, rng):
        c = self.input_shapes[0][0]
        self.add_weight("gamma", (c,), "ones", c, c, rng)
        self.add_weight("beta", (c,), "zeros", c, c, rng)
        self.add_weight("moving_mean", (c,), "zeros", c, c, rng, trainable=False)
        self.add_weight("moving_var", (c,), "ones", c, c, rng, trainable=False)

    def forward(self, ctx, x):
        tr = ctx.tracer
        gamma, beta = ctx.weight(self, "gamma"), ctx.weight(self, "beta")
        mm, mv = ctx.weight(self, "moving_mean"), ctx.weight(self, "moving_var")
        if not ctx.training:
            return tr.op("batch_norm", x, gamma, beta, mm, mv, epsilon=self.epsilon)
        axes = (0, *range(2, x.ndim))
        bshape = (1, x.shape[1], *(1,) * (x.ndim - 2))
        count = int(np.prod([x.shape[a] for a in axes]))
        mean = x.mean(axis=axes)
        d = x - reshape(mean, bshape)
        var = (d * d).mean(axis=axes)
        inv = reshape(1.0 / np.sqrt(var + self.epsilon), bshape)
        y = d * inv * reshape(gamma, bshape) + reshape(beta, bshape)
        m = self.momentum
        ctx.update(self, "moving_mean", mm * m + mean * (1 - m))
        ctx.update(self, "moving_var", mv * m + var * ((1 - m) * count / max(count - 1, 1)))
        return y

    def config(self):
        return {"name": self.name, "momentum": self.momentum, "epsilon": self.epsilon}


class Dropout(Layer):
    """Training: each element kept with probability 1 - rate and scaled by 1/(1 - rate); the
    masks come from fit's data loader, seeded by (seed, epoch, step, layer). Inference: identity."""

    def __init__(self, rate: float, name: str | None = None):
        super().__init__(name)
        if not 0 <= rate < 1:
            raise InputError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, ctx, x):
        if not ctx.training or self.rate == 0:
            return x
        return x * ctx.dropout_mask(self, x.shape, self.rate)

    def config(self):
        return {"name": self.name, "rate": self.rate}


class _Activation(Layer):
    act = ""

    def forward(self, ctx, x):
        return _activation(ctx, x, self.act)

    def config(self):
        return {"name": self.name}


class ReLU(_Activation):
    act = "relu"


class Sigmoid(_Activation):
    act = "sigmoid"


class Tanh(_Activation):
    act = "tanh"


class LeakyReLU(Layer):
    def __init__(self, alpha: float = 0.01, name: str | None = None):
        super().__init__(name)
        self.alpha = float(alpha)

    def forward(self, ctx, x):
        return ctx.tracer.op("leaky_relu", x, alpha=self.alpha)

    def config(self):
        return {"name": self.name, "alpha": self.alpha}


class Softmax(Layer):
    """Softmax along ``axis`` (of the sample with batch, default the last)."""

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.axis = int(axis)

    def forward(self, ctx, x):
        y = ctx.tracer.op("softmax", x, axis=self.axis)
        if self.axis in (-1, x.ndim - 1):
            ctx.note_logits(y, x, "softmax")
        return y

    def config(self):
        return {"name": self.name, "axis": self.axis}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1*d2*...)."""

    def output_shape(self, shape):
        return (int(np.prod(shape)),)

    def forward(self, ctx, x):
        return reshape(x, (x.shape[0], int(np.prod(x.shape[1:]))))


class Reshape(Layer):
    """Each sample reshaped to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], name: str | None = None):
        super().__init__(name)
        self.target_shape = tuple(int(d) for d in target_shape)

    def output_shape(self, shape):
        size = int(np.prod(shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        t = tuple(size // known if d == -1 else d for d in self.target_shape)
        if int(np.prod(t)) != size or self.target_shape.count(-1) > 1:
            raise ModelError(f"cannot reshape a sample of shape {list(shape)} to {list(self.target_shape)}")
        return t

    def forward(self, ctx, x):
        return reshape(x, (x.shape[0], *self.output_shape(x.shape[1:])))

    def config(self):
        return {"name": self.name, "target_shape": list(self.target_shape)}


class Add(Layer):
    """Element-wise sum of inputs of one shape (residual connections)."""

    n_inputs = None

    def output_shape(self, *shapes):
        if len(set(shapes)) != 1:
            raise ModelError(f"Add needs inputs of one shape, got {[list(s) for s in shapes]}")
        return shapes[0]

    def forward(self, ctx, *xs):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


class Concat(Layer):
    """Inputs joined along ``axis`` (counting the batch axis as 0; default the last axis)."""

    n_inputs = None

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.axis = int(axis)

    def _sample_axis(self, rank: int) -> int:
        a = self.axis if self.axis >= 0 else rank + 1 + self.axis
        if not 1 <= a <= rank:
            raise ModelError(f"Concat axis {self.axis} must name a sample axis (1..{rank}, or negative)")
        return a - 1

    def output_shape(self, *shapes):
        a = self._sample_axis(len(shapes[0]))
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or any(x != y for i, (x, y) in enumerate(zip(s, shapes[0])) if i != a):
                raise ModelError(f"Concat inputs {[list(s) for s in shapes]} differ off axis {self.axis}")
        out = list(shapes[0])
        out[a] = sum(s[a] for s in shapes)
        return tuple(out)

    def forward(self, ctx, *xs):
        return concatenate(list(xs), axis=self._sample_axis(xs[0].ndim - 1) + 1)

    def config(self):
        return {"name": self.name, "axis": self.axis}


LAYERS = {cls.__name__: cls for cls in (InputLayer, Dense, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, BatchNorm,
                                        Dropout, ReLU, Sigmoid, Tanh, LeakyReLU, Softmax, Flatten, Reshape, Add, Concat)}
