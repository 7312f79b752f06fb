"""VideoHelperSuite's Meta Batch Manager: a long clip run as a series of chunks, one prompt each.

VHS re-queues the whole prompt once per chunk and counts the chunks in the prompt itself: its
``VHS_BatchManager`` node carries ``frames_per_batch`` and an ``inputs.requeue`` that VHS raises by
one for every chunk after the first (0 for the first). Nodes are given the prompt as a hidden input,
so the pack learns which frames of the whole clip a chunk holds without reaching into VHS.

One rule per node class, declared as ``META_BATCH`` and applied by the input layer (``_inputs.guard``):
nodes that look at frames one by one take their window of the whole clip (``windowed``: the node gets
``meta_batch_chunk``), nodes that need the whole clip at once refuse with the reason
(``whole_clip``), or refuse only when the inputs named in ``whole_clip_when`` are all set.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..recapture_core.depth import DepthMaps, central_median_depth
from ..recapture_core.errors import ReCaptureInputError

log = logging.getLogger(__name__)

MANAGER_CLASS = "VHS_BatchManager"
#: The hidden inputs the guard adds to nodes with a META_BATCH rule, and what windowed nodes receive.
HIDDEN_INPUTS = {"recapture_prompt": "PROMPT", "recapture_node_id": "UNIQUE_ID"}
CHUNK_INPUT = "meta_batch_chunk"


@dataclass(frozen=True)
class Chunk:
    """One chunk of a clip run through Meta Batch Manager: chunk ``index`` (from 0) of ``frames_per_batch`` frames,
    as node ``node`` runs it."""

    manager: str
    index: int
    frames_per_batch: int
    node: str = ""

    @property
    def first_frame(self) -> int:
        return self.index * self.frames_per_batch

    def describe(self, count: int) -> str:
        return f"Meta Batch chunk {self.index + 1} (frames {self.first_frame}..{self.first_frame + count - 1} of the clip)"


WHOLE_CLIP_FIX = ("Run the whole clip in one prompt (remove Meta Batch Manager); to save memory, load fewer frames or "
                  "a smaller size instead.")


@dataclass(frozen=True)
class MetaBatchRule:
    whole_clip: str = ""  # why the node cannot run on a chunk; empty = it can
    whole_clip_when: tuple[str, ...] = ()  # ...only when these inputs are all set
    fix: str = WHOLE_CLIP_FIX
    windowed: bool = False  # the node takes its window of the whole clip (gets meta_batch_chunk)

    def refusal(self, inputs: dict) -> str:
        if not self.whole_clip:
            return ""
        given = all(inputs.get(name) is not None and inputs.get(name) is not False for name in self.whole_clip_when)
        return self.whole_clip if given else ""


def current_chunk(prompt, node_id=None) -> Chunk | None:
    """The chunk this prompt runs, or None when no Meta Batch Manager is in it."""
    managers = [(uid, node) for uid, node in (prompt or {}).items()
                if isinstance(node, dict) and node.get("class_type") == MANAGER_CLASS]
    if not managers:
        return None
    if len(managers) > 1:
        raise ReCaptureInputError("meta_batch", f"the workflow has {len(managers)} Meta Batch Managers",
                                  "Keep one: the chunks of one clip are counted by one manager.")
    uid, node = managers[0]
    inputs = node.get("inputs") or {}
    size, requeue = inputs.get("frames_per_batch"), inputs.get("requeue", 0)
    for name, value, low in (("frames_per_batch", size, 1), ("requeue", requeue, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ReCaptureInputError("meta_batch", f"Meta Batch Manager's {name} is {value!r}, not a whole number",
                                      "Type frames_per_batch into the Meta Batch Manager node (a linked value cannot be read).")
    return Chunk(str(uid), requeue, size, str(node_id))


def apply(rule: MetaBatchRule, node_title: str, inputs: dict) -> None:
    """Check ``inputs`` (a node's keyword arguments) against its rule; give a windowed node its chunk. In place."""
    prompt, node_id = (inputs.pop(name, None) for name in HIDDEN_INPUTS)
    chunk = current_chunk(prompt, node_id)
    if chunk is None:
        return
    reason = rule.refusal(inputs)
    if reason:
        raise ReCaptureInputError("meta_batch", f"{node_title} cannot run chunk by chunk: {reason}", rule.fix)
    if rule.windowed:
        inputs[CHUNK_INPUT] = chunk


#: (node id, manager id) -> what the first chunk fixed for the chunks after it (e.g. the subject distance).
_FIRST_CHUNK: dict[tuple[str, str], float] = {}


def first_chunk_value(chunk: Chunk, compute: Callable[[], float], what: str) -> float:
    """``compute()`` on the first chunk; the same value for every later chunk of that clip, so the clip stays one clip."""
    key = (chunk.node, chunk.manager)
    if chunk.index == 0 or key not in _FIRST_CHUNK:
        if chunk.index > 0:
            log.warning("ReCapture: the first Meta Batch chunk's %s is not known (was the server restarted?); "
                        "chunk %d uses its own.", what, chunk.index + 1)
        _FIRST_CHUNK[key] = compute()
    return _FIRST_CHUNK[key]


def anchor_window(chunk: Chunk | None, trajectory, count: int, depth: DepthMaps | None, match_subject_distance: bool):
    """An anchor node's cameras for the frames it was given and the subject distance to scale them to.

    Without Meta Batch: the trajectory as it is and None (the depth's own subject distance). For a chunk:
    the chunk's window of the whole clip's trajectory, and the first chunk's subject distance, so the
    path neither restarts nor changes scale from chunk to chunk.
    """
    if chunk is None:
        return trajectory, None
    window = trajectory.window(chunk.first_frame, count, chunk.describe(count))
    if not match_subject_distance or depth is None:
        return window, None
    return window, first_chunk_value(chunk, lambda: central_median_depth(depth), "subject distance")


#: The rules the pack's nodes declare (``META_BATCH = ...``).
FINE_TUNING = MetaBatchRule("fine-tuning learns the camera motion and the look from the whole clip at once")
SAMPLING = MetaBatchRule("the video model makes the whole clip at once, so that its frames agree with each other")
ALIGNED_DEPTH = MetaBatchRule("temporal_consistency aligns the depth of every frame to the frames before it, and a "
                              "chunk does not hold the frames before it", ("temporal_consistency",),
                              "Turn temporal_consistency off for chunks (each frame is then read on its own), or run "
                              "the whole clip in one prompt.")
WINDOWED = MetaBatchRule(windowed=True)
ANCHOR = MetaBatchRule(ALIGNED_DEPTH.whole_clip, ("depth_image", "temporal_consistency"), ALIGNED_DEPTH.fix, windowed=True)
