"""edge/boxes.eye_roll: the lean of a face from its two eye keypoints."""

from __future__ import annotations

import pytest

from deepfer.edge.boxes import eye_roll


def test_eye_roll_is_the_eye_line_angle_in_either_order():
    assert eye_roll((10, 10), (20, 20)) == pytest.approx(45.0)
    assert eye_roll((20, 20), (10, 10)) == pytest.approx(45.0)
    assert eye_roll((10, 30), (20, 20)) == pytest.approx(-45.0)
    assert eye_roll((0, 5), (30, 5)) == 0.0
