"""Play CartPole-v1 with a policy exported to ONNX, using only NumPy and onnxruntime (no JAX, no purejaxppo).

    purejaxppo train --logdir runs/cartpole                       # CartPole-v1's shipped config, ~15 s on a CPU
    purejaxppo export runs/cartpole --format onnx --out cartpole.onnx
    python examples/onnx_cartpole.py cartpole.onnx --episodes 5

The environment is CartPole-v1's dynamics as gymnasium (and gymnax) write them, in NumPy: Euler integration with
gravity 9.8, cart mass 1.0, pole mass 0.1, pole half-length 0.5, force 10, tau 0.02; an episode ends when the pole
leans more than 12 degrees, the cart leaves [-2.4, 2.4], or after 500 steps; reward 1 per step. The exported model
takes ``obs float32[B, 4]`` (observation normalisation, if the run used it, is inside the model) and returns
``action int32[B]``. Prints one return per episode, then checks that JAX was never imported.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import onnxruntime

GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASSCART + MASSPOLE
POLEMASS_LENGTH = MASSPOLE * LENGTH
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
MAX_STEPS = 500


class CartPole:
    """CartPole-v1 (gymnasium's equations, Euler integration)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.state = np.zeros(4)

    def reset(self) -> np.ndarray:
        self.state = self.rng.uniform(-0.05, 0.05, size=4)
        return self.state.astype(np.float32)

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        x, x_dot, theta, theta_dot = self.state
        force = FORCE_MAG if action == 1 else -FORCE_MAG
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + POLEMASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * cos**2 / TOTAL_MASS))
        x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS
        x, x_dot = x + TAU * x_dot, x_dot + TAU * x_acc
        theta, theta_dot = theta + TAU * theta_dot, theta_dot + TAU * theta_acc
        self.state = np.array([x, x_dot, theta, theta_dot])
        done = abs(x) > X_THRESHOLD or abs(theta) > THETA_THRESHOLD
        return self.state.astype(np.float32), 1.0, done


def play(model: str, episodes: int, seed: int) -> list[float]:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (obs_input,) = session.get_inputs()  # a feed-forward CartPole policy: obs only
    env = CartPole(np.random.default_rng(seed))
    returns = []
    for _ in range(episodes):
        obs, total = env.reset(), 0.0
        for _ in range(MAX_STEPS):
            (action,) = session.run(["action"], {obs_input.name: obs[None]})
            obs, reward, done = env.step(int(action[0]))
            total += reward
            if done:
                break
        returns.append(total)
    return returns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the exported .onnx policy of a CartPole-v1 run")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    returns = play(args.model, args.episodes, args.seed)
    for i, r in enumerate(returns):
        print(f"episode {i}: return {r:.0f}")
    print(f"mean return {np.mean(returns):.1f} over {len(returns)} episodes")
    print(f"jax imported: {'jax' in sys.modules}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
