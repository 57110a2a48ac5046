"""The training pipeline, one jitted program: rollout -> batch (values, GAE) -> epochs of minibatch updates ->
metrics -> optional evaluation, scanned over updates.

- `rollout`: T vectorised environment steps in one `lax.scan` (`collect`).
- `batch`: values, GAE and the minibatch layout; `fit` runs the epochs.
- `metrics`: the per-update metrics, aggregated on the device.
- `evaluation`: greedy or sampled episodes on their own environments and keys (`evaluate`).
- `train`: `Setup`, `RunState`, `make_train` (key -> TrainOutput) and `make_train_functions` (chunks of updates).
- `trainer`: `PPOTrainer`, one PPO update on trajectories a user collected (Flax NNX).

May import: core, envs, config and models below it; never scale, runs or the command line.
"""
