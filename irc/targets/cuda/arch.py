"""The GPU architectures the cuda target generates code for, and what each one offers.

PTX is generated per architecture (``sm_70``, ``sm_80``, ``sm_90``...): kernels specialise on
what the hardware has (tensor-core ``mma`` for f16/bf16 from sm_80 on, ``dp4a`` everywhere from
sm_61), and the launch plan follows the kernels chosen. The PTX ISA version is the lowest that
has every instruction irc emits for that architecture, so an older driver can still load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.errors import InputError


@dataclass(frozen=True, slots=True)
class Arch:
    """One GPU architecture: its name (``sm_80``), compute capability and PTX ISA version."""

    name: str
    major: int
    minor: int
    ptx: tuple[int, int]
    #: static shared memory per block (bytes): every kernel stays within the 48 KiB that needs
    #: no opt-in on any architecture.
    shared_bytes: int = 48 * 1024
    max_threads: int = 1024

    @property
    def cc(self) -> int:
        return self.major * 10 + self.minor

    @property
    def has_mma_bf16(self) -> bool:
        """mma.sync.m16n8k16 with f16/bf16 inputs and f32 accumulators (Ampere and later)."""
        return self.cc >= 80

    @property
    def has_dp4a(self) -> bool:
        return self.cc >= 61

    @property
    def has_cp_async(self) -> bool:
        return self.cc >= 80

    @property
    def llvm_features(self) -> str:
        return f"+ptx{self.ptx[0]}{self.ptx[1]}"

    def __str__(self) -> str:
        return self.name


ARCHS: dict[str, Arch] = {
    "sm_70": Arch("sm_70", 7, 0, (7, 0)),
    "sm_75": Arch("sm_75", 7, 5, (7, 0)),
    "sm_80": Arch("sm_80", 8, 0, (7, 0)),
    "sm_86": Arch("sm_86", 8, 6, (7, 1)),
    "sm_89": Arch("sm_89", 8, 9, (7, 8)),
    "sm_90": Arch("sm_90", 9, 0, (7, 8)),
}

#: What ``irc compile --target cuda`` writes when no architecture is named.
DEFAULT_ARCHS = ("sm_70", "sm_80", "sm_90")


def get_arch(name: str | int) -> Arch:
    """An Arch from ``sm_80``, ``80`` or ``8.0``."""
    key = str(name).strip().lower().replace(".", "")
    if not key.startswith("sm_"):
        key = "sm_" + key
    try:
        return ARCHS[key]
    except KeyError:
        raise InputError(f"unknown GPU architecture '{name}' (known: {', '.join(ARCHS)})") from None


def arch_list(spec) -> tuple[Arch, ...]:
    """Architectures from an option value: one name, a comma-separated string or a list."""
    if spec is None:
        names = DEFAULT_ARCHS
    elif isinstance(spec, str):
        names = [s for s in spec.replace(" ", "").split(",") if s]
    else:
        names = list(spec)
    archs = tuple(dict.fromkeys(get_arch(n) for n in names))
    if not archs:
        raise InputError("no GPU architecture given")
    return archs


def arch_of_device(major: int, minor: int) -> Arch:
    """The newest known architecture a device of compute capability major.minor runs."""
    cc = major * 10 + minor
    fits = [a for a in ARCHS.values() if a.cc <= cc]
    if not fits:
        raise InputError(f"GPUs of compute capability {major}.{minor} are older than irc supports (sm_70)")
    return max(fits, key=lambda a: a.cc)
