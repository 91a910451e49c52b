"""Timeline changes as data: removing a path takes its whole subtree, at its time only."""

from __future__ import annotations

from imdsmock.model import Leaf
from imdsmock.timeline import Change, Timeline


def test_a_removal_deletes_the_path_and_its_subtree_from_its_segment_on() -> None:
    """A change removing ``meta-data/spot`` drops that leaf and everything under it (not a
    sibling that merely shares the prefix), and only in segments after its time."""
    tree = {
        "meta-data/spot": Leaf.text("x"),
        "meta-data/spot/instance-action": Leaf.text("{}"),
        "meta-data/spotless": Leaf.text("kept"),
        "meta-data/ami-id": Leaf.text("ami-0"),
    }
    timeline = Timeline((Change(at=100.0, remove=("meta-data/spot",)),))
    index, start, end = timeline.segment(150.0)
    assert (index, start, end) == (1, 100.0, float("inf"))
    before = dict(tree)
    assert timeline.apply(before, timeline.segment(50.0)[0]) is False
    assert before == tree
    after = dict(tree)
    assert timeline.apply(after, index) is False
    assert sorted(after) == ["meta-data/ami-id", "meta-data/spotless"]
