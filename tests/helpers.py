"""Small helpers shared by the tests."""
from __future__ import annotations


class Interrupted(Exception):
    """Stands in for ComfyUI's interrupt exception."""


def interrupt_on_call(n: int):
    """A ``check_interrupt`` callback that raises :class:`Interrupted` on its n-th call."""
    calls = []

    def check():
        calls.append(1)
        if len(calls) == n:
            raise Interrupted

    return check
