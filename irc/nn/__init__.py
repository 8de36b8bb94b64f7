"""irc.nn: define a network, train it with a compiled train step, export it to ONNX.

    from irc import nn
    model = nn.Sequential([nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")],
                          input_shape=(1, 28, 28))
    model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu")
    model.fit(x_train, y_train, batch_size=100, epochs=5, validation_data=(x_test, y_test))
    model.save("model.onnx")

Layers (irc.nn.layers), initializers, losses and metrics (irc.nn.losses), optimizers with
learning-rate schedules (irc.nn.optimizers), Model / Sequential / GraphModel (irc.nn.model,
irc.nn.graph_model), the train step as one graph (irc.nn.step), the prefetching data loader
(irc.nn.data) and checkpoints (irc.nn.checkpoint).
"""

from irc.nn import initializers  # noqa: F401
from irc.nn.checkpoint import load_checkpoint  # noqa: F401
from irc.nn.graph_model import GraphModel  # noqa: F401
from irc.nn.layers import (  # noqa: F401
    Add,
    AvgPool2D,
    BatchNorm,
    Concat,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Input,
    Layer,
    LeakyReLU,
    Linear,
    MaxPool2D,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Symbol,
    Tanh,
)
from irc.nn.losses import (  # noqa: F401
    Accuracy,
    BinaryCrossEntropy,
    CrossEntropy,
    Loss,
    MeanSquaredError,
    MeanSquaredErrorMetric,
    Metric,
)
from irc.nn.model import BaseModel, History, Model, Sequential, TrainingError  # noqa: F401
from irc.nn.optimizers import SGD, Adam, ExponentialDecay, Optimizer, StepDecay  # noqa: F401
