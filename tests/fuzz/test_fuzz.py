"""A short seeded fuzzing run (every mutant must compile or end in an IRCError), and the
classification of children that raise, crash or hang."""

import os
import signal
import time

import pytest

from tests.fuzz import runner
from tests.fuzz.campaign import fuzz
from tests.fuzz.mutate_bytes import BYTE_MUTATIONS
from tests.fuzz.mutate_struct import STRUCT_MUTATIONS
from tests.fuzz.seeds import seed_bytes, seed_model


def test_short_seeded_run_has_no_unexpected_outcome():
    counts, bad = fuzz(range(40), seed=20261207, targets=["interp"], seeds=["mlp", "shape_ops", "lenet5_file"],
                       timeout=60)
    assert sum(counts.values()) == 40
    assert not bad, "\n".join(f"#{m.index} {o.cls} [{m.seed_model}, {m.mutation}] {o.detail}" for m, o in bad)
    # a run where nothing compiles, or nothing fails, would test nothing
    assert counts["compiled"] > 0 and counts["clean"] > 0


def test_mutants_depend_only_on_seed_and_index():
    a = runner.make_mutant(5, 17, ["mlp", "shape_ops"])
    b = runner.make_mutant(5, 17, ["mlp", "shape_ops"])
    assert (a.mutation, a.data, a.files) == (b.mutation, b.data, b.files)
    assert a.data != seed_bytes(a.seed_model)
    assert runner.make_mutant(6, 17, ["mlp", "shape_ops"]).data != a.data


@pytest.mark.parametrize("name", sorted(STRUCT_MUTATIONS))
def test_every_structured_mutation_changes_the_model(name):
    import numpy as np

    for attempt in range(20):
        m = seed_model("shape_ops")
        files = {}
        what = STRUCT_MUTATIONS[name](m, np.random.default_rng(attempt), files)
        if what is not None:
            assert m.SerializeToString() != seed_bytes("shape_ops") or files, what
            return
    pytest.fail(f"{name} found nothing to mutate in 20 tries")


@pytest.mark.parametrize("name", sorted(BYTE_MUTATIONS))
def test_every_byte_mutation_changes_the_bytes(name):
    import numpy as np

    data = seed_bytes("mlp")
    out, what = BYTE_MUTATIONS[name](data, seed_model("mlp"), np.random.default_rng(3))
    assert out != data, what


def _segfault(path, targets):
    os.kill(os.getpid(), signal.SIGSEGV)


def _sleep(path, targets):
    time.sleep(30)


def _report(path, targets):
    return runner.Outcome("other", "ZeroDivisionError: boom", "ZeroDivisionError at x.py:1 f")


@pytest.mark.parametrize("fn, cls", [(_segfault, "crash"), (_sleep, "hang"), (_report, "other")])
def test_children_are_classified(monkeypatch, fn, cls):
    """The child is forked, so the patched attempt is what it runs."""
    monkeypatch.setattr(runner, "attempt", fn)
    out = runner.run_isolated(runner.make_mutant(0, 0, ["mlp"]), ["interp"], timeout=1)
    assert out.cls == cls, out
    if cls == "crash":
        assert out.detail == f"child exited with signal {int(signal.SIGSEGV)}"
    if cls == "other":
        assert out.where == "ZeroDivisionError at x.py:1 f"


def test_attempt_classifies_exceptions(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(seed_bytes("mlp"))
    assert runner.attempt(path, ["interp"]).cls == "compiled"
    path.write_bytes(b"not a model")
    assert runner.attempt(path, ["interp"]).cls == "clean"

    def broken(p, t):
        raise IndexError("deep inside")

    monkeypatch.setattr(runner, "_run_target", broken)
    out = runner.attempt(path, ["interp"])
    assert (out.cls, out.where.split(" at ")[0]) == ("other", "IndexError")
