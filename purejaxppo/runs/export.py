"""Export a trained policy for use without purejaxppo: StableHLO (through `jax.export`) or ONNX (through jax2onnx).

What is exported is one seed's **greedy** policy, as a pure function of raw observations (as the wrapped environment
gives them: Discrete observations one-hot, everything float32), with everything else baked in as constants: the
parameters, and, when the run normalised observations, its observation statistics and ``obs_clip``
(``clip((obs - mean) / sqrt(var + 1e-8), -obs_clip, obs_clip)``, exactly as in training and `load_policy`).

Inputs and outputs (B is the batch):

* feed-forward policy: ``action = f(obs [B, *obs_shape])``;
* recurrent (GRU) policy: ``(action, carry) = f(obs [B, *obs_shape], carry float32[B, H], reset bool[B])``; start
  with ``carry = zeros [B, H]`` and thread the returned carry into the next call; ``reset[i]`` marks an observation
  that starts a new episode (the carry of that row is restarted from zeros before reading it), as
  `LoadedPolicy.act` does;
* an environment with an action mask adds a last input ``mask bool[B, num_actions]`` (True: legal); illegal actions
  are never chosen.

The action: for a discrete action space, ``int32[B]``, the argmax of the (masked) logits (the mode of the
categorical distribution, as ``load_policy(run).act`` returns); for a Box action space, ``float32[B, A]``, the
Gaussian's mean **clipped into the Box bounds** ``[low, high]``: the action the environment receives, since the
training environment is wrapped in `envs.ClipAction` (``load_policy(run).act`` returns the unclipped mean).

Formats:

* ``stablehlo``: ``jax.export.export(jax.jit(f))(...).serialize()`` written as raw bytes; a JAX program loads it with
  ``jax.export.deserialize(bytearray(open(path, "rb").read()))`` and calls ``.call(*inputs)``, without this package.
  The batch dimension is **symbolic** (``b``: any batch size works) unless a fixed ``batch_size`` is given. Called
  with a wrong observation shape, ``call`` raises from jax.
* ``onnx``: ``jax2onnx.to_onnx`` (the ``export`` extra). Inputs are named ``obs`` (and ``carry``, ``reset``,
  ``mask``), outputs ``action`` (and ``carry_out``). Run it with onnxruntime (`run_onnx` checks the shapes first).
  The batch dimension is dynamic (``B``) unless a fixed ``batch_size`` is given (should jax2onnx fail to trace a
  policy with a dynamic batch, the export falls back to a fixed batch of 1); the ``.json`` description says which
  (``"batch_size": null`` for dynamic).

How the function is written: not through the distribution objects (``pi.mode()``) and the GRU's ``nn.scan`` as in
training, which jax2onnx 0.17 cannot trace (distrax builds the Gaussian's scale, and flax's scan its carry, with shapes
that jax2onnx's patched ``jnp`` turns into tracers), but from the same flax submodules and parameters: the actor torso
(for the GRU: `RecurrentActorCritic.step`, one GRU step with its reset and no scan, then the actor torso), the policy
head's dense layer, then ``argmax`` of the (masked) logits or the clipped mean. The same function is used for both
formats, and the tests check it against ``load_policy(run).act``.

Next to the artefact, ``<artefact>.json`` describes it: the environment, input and output names, shapes and dtypes,
the action bounds, whether normalisation is baked in, and where it came from (run, seed, update). `run_onnx` runs an
exported ONNX model from Python with the shapes checked first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from purejaxppo.core.normalize import normalize_obs
from purejaxppo.models.networks import ActorCritic, RecurrentActorCritic, masked_logits
from purejaxppo.runs.policy import LoadedPolicy, custom_env_name, load_policy

FORMATS = ("onnx", "stablehlo")
SUFFIXES = {"onnx": ".onnx", "stablehlo": ".stablehlo"}


def greedy_function(loaded: LoadedPolicy) -> tuple[Callable, list[tuple[str, tuple, Any]], list[str]]:
    """``(f, inputs, output_names)``: the exported function (see the module docstring), its inputs as ``(name,
    shape with "B" for the batch, dtype)`` and its outputs' names."""
    setup, config = loaded.setup, loaded.config
    spec, policy, params, stats = setup.env.spec, setup.policy, loaded.params, loaded.obs_stats
    low = None if spec.discrete else np.asarray(spec.action_low, np.float32)
    high = None if spec.discrete else np.asarray(spec.action_high, np.float32)

    module = policy.module
    if not isinstance(module, (ActorCritic, RecurrentActorCritic)):
        raise TypeError(f"only the built-in networks can be exported, not {type(module).__name__}")
    head = {"params": params["params"]["policy_head"]["Dense_0"]}

    def action_of(features, mask):
        out = nn.Dense(spec.num_actions).apply(head, features)  # PolicyHead's dense layer: logits, or Gaussian mean
        if spec.discrete:
            return jnp.argmax(masked_logits(out, mask), axis=-1).astype(jnp.int32)
        return jnp.clip(out, low, high).astype(jnp.float32)

    def step(obs, carry, reset, mask):
        obs = normalize_obs(stats, obs, config.obs_clip, config.normalize_observations)
        if policy.recurrent:
            carry = module.apply(params, carry, obs, reset, method="step")
            features = module.apply(params, carry, method=lambda m, h: m.actor_torso(h))
        else:
            features = module.apply(params, obs, method="actor_features")
        return action_of(features, mask), carry

    inputs = [("obs", ("B", *spec.obs_shape), np.float32)]
    if policy.recurrent:
        hidden = policy.initial_carry(1).shape[-1]
        inputs += [("carry", ("B", hidden), np.float32), ("reset", ("B",), np.bool_)]
        outputs = ["action", "carry_out"]
    else:
        outputs = ["action"]
    if spec.has_action_mask:
        inputs.append(("mask", ("B", spec.num_actions), np.bool_))

    if policy.recurrent:
        def f(obs, carry, reset, *mask):
            return step(obs, carry, reset, mask[0] if mask else None)
    else:
        def f(obs, *mask):
            return step(obs, (), jnp.zeros(obs.shape[:1], bool), mask[0] if mask else None)[0]
    return f, inputs, outputs


def _metadata(loaded: LoadedPolicy, run, seed_index: int, fmt: str, inputs, batch: int | None) -> dict[str, Any]:
    spec, config = loaded.setup.env.spec, loaded.config
    shown = "B" if batch is None else batch
    action_shape = [shown] if spec.discrete else [shown, spec.num_actions]
    out = [{"name": "action", "shape": action_shape, "dtype": "int32" if spec.discrete else "float32"}]
    if loaded.setup.policy.recurrent:
        out.append({"name": "carry_out", "shape": [shown, inputs[1][1][1]], "dtype": "float32"})
    return {
        "format": fmt,
        "env_name": config.env_name,
        "env_kwargs": dict(config.env_kwargs_dict),
        "run": str(run),
        "seed_index": seed_index,
        "update": loaded.update,
        "batch_size": batch,  # None: dynamic (any batch size), else the fixed batch the artefact takes
        "inputs": [{"name": n, "shape": [shown if d == "B" else d for d in s], "dtype": np.dtype(d).name}
                   for n, s, d in inputs],
        "outputs": out,
        "action": ("argmax of the logits" if spec.discrete else
                   "mean of the Gaussian, clipped into [action_low, action_high]"),
        "action_low": None if spec.discrete else np.asarray(spec.action_low).tolist(),
        "action_high": None if spec.discrete else np.asarray(spec.action_high).tolist(),
        "recurrent": loaded.setup.policy.recurrent,
        "action_mask": spec.has_action_mask,
        "normalized_observations": bool(config.normalize_observations),
        "obs_clip": float(config.obs_clip) if config.normalize_observations else None,
    }


def _specs(inputs, batch) -> list[jax.ShapeDtypeStruct]:
    return [jax.ShapeDtypeStruct(tuple(batch if d == "B" else d for d in shape), dtype) for _, shape, dtype in inputs]


def _stablehlo(f: Callable, inputs, batch_size: int | None) -> tuple[bytes, int | None]:
    batch = jax.export.symbolic_shape("b")[0] if batch_size is None else batch_size
    return jax.export.export(jax.jit(f))(*_specs(inputs, batch)).serialize(), batch_size


def _onnx(f: Callable, inputs, outputs, path: Path, batch_size: int | None) -> int | None:
    """Write the ONNX model; returns the fixed batch size used, None for a dynamic one."""
    try:
        import jax2onnx
    except ImportError as e:
        raise ValueError(f"ONNX export needs jax2onnx, onnx and onnxruntime: pip install 'purejaxppo[export]' ({e})"
                         ) from None

    def convert(batch):
        return jax2onnx.to_onnx(f, _specs(inputs, batch), model_name="purejaxppo_policy",
                                input_names=[n for n, _, _ in inputs], output_names=outputs)

    if batch_size is None:
        try:
            model = convert("B")
        except TypeError:  # a shape jax2onnx cannot trace with a symbolic batch
            batch_size = 1
    if batch_size is not None:
        model = convert(batch_size)
    path.write_bytes(model.SerializeToString())
    return batch_size


def check_out_path(out: str | Path, name: str = "out") -> None:
    """Raise a ValueError naming `name` when the file `out` cannot be written there: it lies under a file, or is a
    directory."""
    out = Path(out)
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{name} {out}: {parent} is a file, not a directory")
    if out.is_dir():
        raise ValueError(f"{name} {out} is a directory; give the path of the file to write")


def export_policy(run: str | Path, format: str, seed_index: int = 0, out: str | Path | None = None,
                  batch_size: int | None = None, step: int | None = None, env=None, env_params=None) -> Path:
    """Export one seed's greedy policy of a run (see the module docstring for what the artefact computes).

    Args:
      run: a run directory, its ``checkpoints`` directory or ``checkpoints/<update>`` (as `load_policy`).
      format: ``"onnx"`` or ``"stablehlo"``.
      seed_index: which of the run's seeds.
      out: the file to write (default: ``<run>/policy_seed<I>.onnx`` or ``.stablehlo``).
      batch_size: a fixed batch size, or None for a dynamic one (ONNX: where jax2onnx can trace the policy so, else a
        fixed batch of 1; the ``.json`` description says which).
      step: a specific update (default: the latest).
      env, env_params: the environment object a run trained on your own environment needs (as `load_policy`).

    Returns:
      The artefact's path; its description is written next to it as ``<artefact>.json``.

    Raises:
      ValueError: an unknown format, a bad seed index, jax2onnx missing, an `out` under a file or that is a
        directory; `CheckpointError`: no usable checkpoint.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if out is not None:
        check_out_path(out)
        other = {s: f for f, s in SUFFIXES.items() if f != format}.get(Path(out).suffix)
        if other is not None:
            raise ValueError(f"out {out} names a .{other} file, but format is {format!r}: give format={other!r} or "
                             f"a name ending in {SUFFIXES[format]}")
    loaded = load_policy(run, seed_index=seed_index, deterministic=True, step=step, env=env, env_params=env_params)
    f, inputs, outputs = greedy_function(loaded)
    run_dir = Path(run)
    out = Path(out) if out is not None else run_dir / f"policy_seed{seed_index}{SUFFIXES[format]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "stablehlo":
        program, batch = _stablehlo(f, inputs, batch_size)
        out.write_bytes(program)
    else:
        batch = _onnx(f, inputs, outputs, out, batch_size)
    meta = _metadata(loaded, run, seed_index, format, inputs, batch)
    if env is not None:  # not config.env_name's environment: name the object's class
        meta.update(env_name=f"{custom_env_name(env)} (custom environment)", env_kwargs={})
    Path(f"{out}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def run_onnx(path: str | Path, *inputs: Any, session: Any = None) -> list[np.ndarray]:
    """Run an exported ONNX policy with onnxruntime on numpy inputs (in the model's input order), after checking
    their number and shapes against the model: a mismatch raises a ValueError naming the input and both shapes."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ValueError(f"running an ONNX policy needs onnxruntime: pip install 'purejaxppo[export]' ({e})") from None
    session = session or onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.get_inputs()
    if len(inputs) != len(expected):
        raise ValueError(f"the policy takes {len(expected)} inputs ({', '.join(i.name for i in expected)}), "
                         f"got {len(inputs)}")
    feed = {}
    for spec, value in zip(expected, inputs):
        value = np.asarray(value)
        fixed = [d if isinstance(d, int) else None for d in spec.shape]
        if value.ndim != len(fixed) or any(d is not None and d != v for d, v in zip(fixed, value.shape)):
            shown = ["B" if d is None else d for d in fixed]
            raise ValueError(f"input {spec.name!r} has shape {list(value.shape)}; the policy expects {shown}")
        feed[spec.name] = value.astype(bool if spec.type == "tensor(bool)" else np.float32)
    return session.run(None, feed)
