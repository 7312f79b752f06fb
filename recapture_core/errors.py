"""The one exception type the pack raises for bad user input.

ComfyUI shows ``str(exception)`` to the user, so the message is the whole interface: it names
the input, says what was wrong, and says what to do.
"""
from __future__ import annotations


class ReCaptureInputError(ValueError):
    """Bad input, detected before any long work starts.

    Args:
        input_name: the node input or widget at fault, as the user sees it (e.g. ``"hole_mask"``).
        problem: what is wrong with it, with the offending values.
        fix: what the user can do about it.
    """

    def __init__(self, input_name: str, problem: str, fix: str):
        self.input_name = input_name
        self.problem = problem
        self.fix = fix
        super().__init__(f"ReCapture: input '{input_name}': {problem}. {fix}")
