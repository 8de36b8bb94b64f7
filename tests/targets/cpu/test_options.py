"""CPU target options that LLVM would otherwise die on are checked before it sees them: an
unknown CPU name, an int8 micro-kernel the CPU lacks, a thread count out of range. Each is an
InputError (the CLI: exit 2, one line) and the process goes on."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.errors import InputError
from irc.targets.cpu import check_threads, default_threads, max_threads
from irc.zoo import lenet5
from tests.support.cli import assert_user_error
from tests.support.oracle import LENET


@pytest.mark.parametrize("cpu", ["foo", "znver99", "$(true)", ""])
def test_unknown_cpu_is_an_input_error(cpu):
    with pytest.raises(InputError, match="cpu="):
        irc.compile(LENET, "cpu", shapes={"input": (1, 1, 28, 28)}, cpu=cpu)


def test_a_known_cpu_name_compiles_for_a_library(tmp_path):
    m = irc.compile(LENET, "cpu", shapes={"input": (1, 1, 28, 28)}, cpu="x86-64-v2")
    m.executable.save(tmp_path / "lenet.so")
    assert (tmp_path / "lenet.so").stat().st_size > 0


def test_cli_unknown_cpu_is_one_line_and_status_2(irc):
    assert_user_error(irc("compile", LENET, "--opt", "cpu=foo"), "cpu='foo' is not a CPU LLVM knows")


def test_int8_kernel_the_cpu_lacks_is_refused():
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    # generic x86-64 has neither AVX2 nor AVX-512 on any host
    for isa in ("vnni512", "pmaddwd512", "pmaddwd256"):
        with pytest.raises(InputError, match=f"int8_isa={isa} needs"):
            irc.compile(lenet5(4), "cpu", quantize="int8", calib={"input": x}, cpu="generic", int8_isa=isa)
    m = irc.compile(lenet5(4), "cpu", quantize="int8", calib={"input": x}, cpu="generic", int8_isa="pmaddwd128")
    assert m(x).shape == (4, 10)


def test_thread_counts_are_bounded():
    assert check_threads(None) == default_threads()
    assert check_threads(max_threads()) == max_threads()
    for bad in (0, -1, max_threads() + 1, 10_000, 2.0, True, "2"):
        with pytest.raises(InputError, match="threads must be an integer from 1 to"):
            check_threads(bad)
    with pytest.raises(InputError, match="threads must be"):
        irc.compile(LENET, "cpu", shapes={"input": (1, 1, 28, 28)}, threads=10_000)


def test_bench_refuses_too_many_threads(irc):
    assert_user_error(irc("bench", LENET, "--threads", "10000", "--vs", "none"), "threads must be an integer")
