"""A shared library checked before ``dlopen``: the dynamic loader maps a file's segments as its
headers describe them, and touching a segment that lies past the end of a truncated file kills
the process with SIGBUS. So the ELF header and every segment are checked against the file first."""

from __future__ import annotations

import struct
from pathlib import Path

from irc.errors import InputError

_EM_X86_64 = 62
_ET_DYN = 3
_PT_LOAD = 1


def check_shared_library(path: Path) -> None:
    """InputError unless ``path`` is a whole x86-64 ELF shared object."""
    data = path.read_bytes()
    size = len(data)

    def bad(why: str) -> InputError:
        return InputError(f"{path} is not a loadable shared library: {why}")

    if size < 64 or data[:4] != b"\x7fELF":
        raise bad("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise bad("not a 64-bit little-endian ELF file")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != _ET_DYN or e_machine != _EM_X86_64:
        raise bad(f"ELF type {e_type}, machine {e_machine}; expected an x86-64 shared object")
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    if phentsize < 56 or phoff + phnum * phentsize > size or shoff + shnum * shentsize > size:
        raise bad(f"truncated ({size} bytes; its headers reach past the end)")
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_LOAD and p_offset + p_filesz > size:
            raise bad(f"truncated ({size} bytes; segment {i} ends at byte {p_offset + p_filesz})")
