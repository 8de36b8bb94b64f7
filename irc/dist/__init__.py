"""Data-parallel training across processes and machines, over MPI (mpi4py).

    mpirun -np 4 python train.py       # in train.py, model.fit(...) trains data-parallel

Each rank trains a replica on its share of every global batch; ``sync_every=1`` all-reduces the
gradients every step (the same as one process training on the global batch), ``sync_every=K``
averages weights and optimizer state every K steps. See docs/distributed.md.

Nothing here imports mpi4py until a communicator is made: importing irc never needs MPI.
"""

from irc.dist.comm import Communicator, DistributedError  # noqa: F401
from irc.dist.data_parallel import evaluate, fit, save_checkpoint  # noqa: F401
from irc.dist.launch import launched_size, resolve, world  # noqa: F401
from irc.dist.schedule import ring_bytes, sync_schedule  # noqa: F401
