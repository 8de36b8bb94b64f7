"""Checks shared by the command-line tests (the ``irc`` fixture itself is in tests/conftest.py)."""

from __future__ import annotations


def assert_user_error(result, *fragments: str) -> str:
    status, _, err = result
    lines = err.splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("irc: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]
