"""2D high-symmetry paths: the corners of hexagonal and rectangular zones."""

from __future__ import annotations

import numpy as np
import pytest

from topogen.brillouin import path_2d


@pytest.mark.parametrize("gamma", [120.0, 60.0])
def test_hexagonal_cells_go_through_m_and_k_at_their_distances(gamma):
    a = 3.2
    g = np.radians(gamma)
    cell = np.array([[a, 0, 0], [a * np.cos(g), a * np.sin(g), 0], [0, 0, 20.0]])
    path = path_2d(cell, n=60)
    assert path.labels == ("G", "M", "K", "G")
    # |GM| = 1/(sqrt(3) a), |MK| = 1/(3 a), |KG| = 2/(3 a) (no 2 pi)
    sides = [1 / (np.sqrt(3) * a), 1 / (3 * a), 2 / (3 * a)]
    np.testing.assert_allclose(np.diff(path.ticks), sides)
    recip = np.linalg.inv(cell).T
    corners = [path.kpoints[np.argmin(abs(path.distance - t))] for t in path.ticks]
    lengths = [np.linalg.norm(k @ recip) for k in corners]
    np.testing.assert_allclose(lengths, [0, 1 / (np.sqrt(3) * a), 2 / (3 * a), 0], atol=1e-12)
    assert np.all(np.diff(path.distance) > 0) and 55 <= len(path.kpoints) <= 66


def test_other_cells_take_the_rectangular_path():
    cell = np.diag([3.0, 4.5, 20.0])
    path = path_2d(cell, n=40)
    assert path.labels == ("G", "X", "S", "Y", "G")
    corners = [path.kpoints[np.argmin(abs(path.distance - t))] for t in path.ticks]
    np.testing.assert_allclose(
        np.array(corners)[:, :2], [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5], [0, 0]], atol=1e-12
    )
    assert np.all(path.kpoints[:, 2] == 0)
    np.testing.assert_allclose(path.ticks[-1], 2 * (1 / 6 + 1 / 9))
