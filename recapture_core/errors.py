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
        fix: what the user can do about it, in the core's own terms.
        hint: a key a host may know more about (``"svd_diffusers"``: where the host keeps such
            folders; ``"resample_trajectory"``: which of its nodes does that). The core never names
            a host's folders or node titles; ComfyUI's nodes append theirs (``nodes/_inputs.py``).
    """

    def __init__(self, input_name: str, problem: str, fix: str, hint: str | None = None):
        self.input_name = input_name
        self.problem = problem
        self.fix = fix
        self.hint = hint
        super().__init__(f"ReCapture: input '{input_name}': {problem}. {fix}")

    def with_host_words(self, words: str) -> "ReCaptureInputError":
        """The same error with the host's own words (folders, node titles) after the fix."""
        return ReCaptureInputError(self.input_name, self.problem, f"{self.fix} {words}")
