"""Stand-ins for a team's own drawer-opening policies: `wmeval` runs them from the zoo file with
`base = "python"`. Each reads only proprio (the hand position) and aims at a fixed guess of the drawer
handle's x; the handle's true x varies from episode to episode, so the guess sets how often it works."""

import numpy as np

HANDLE_Y, HANDLE_Z = 0.73, 0.07  # where the drawer handle is (its x varies around -0.03)


class BlindOpener:
    def __init__(self, layout, aim_x: float, gain: float) -> None:
        self.k, self.aim, self.gain = layout.frame_skip, np.array([aim_x, HANDLE_Y, HANDLE_Z]), gain
        self.phase = 0

    def reset(self, seed: int) -> None:
        self.phase = 0  # above the handle, then down to it, then pull

    def act(self, obs):
        hand = obs.state[:3]
        if self.phase == 0 and np.linalg.norm(hand[:2] - self.aim[:2]) < 0.04:
            self.phase = 1
        if self.phase == 1 and hand[2] - self.aim[2] < 0.08:  # at the handle, or resting on it
            self.phase = 2
        target = self.aim + [(0, 0, 0.3), (0, 0, 0), (0, -0.2, 0)][self.phase]
        move = np.clip(self.gain * (target - hand), -1, 1)
        return np.repeat(np.append(move, -1.0)[None].astype(np.float32), self.k, axis=0)


def make(layout, aim_x: float = -0.03, gain: float = 10.0):
    return BlindOpener(layout, aim_x, gain)
