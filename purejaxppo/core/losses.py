"""The PPO objective (and SPO's), written once on plain arrays so every caller shares it.

`ppo_loss` takes per-sample arrays and scalars and returns ``(loss, LossInfo)``; `make_train` and `PPOTrainer` both
reach it through `batch.minibatch_loss`. Loss to *minimise*:

    loss = policy_loss + vf_coeff * value_loss - entropy_coeff * entropy

with r = pi(a|s) / pi_old(a|s) and A the (optionally standardised) advantage:

* PPO (Schulman et al., 2017, arXiv 1707.06347):  policy_loss = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)]
* SPO (Xie et al., 2024, arXiv 2401.16025):       policy_loss = -E[r A - |A| / (2 eps) (r - 1)^2]
* value_loss = 0.5 E[max((V - G)^2, (V_old + clip(V - V_old, -eps, eps) - G)^2)]   (or 0.5 E[(V - G)^2] unclipped)

Diagnostics: approx_kl = E[(r - 1) - log r] (Schulman's k3 estimator, >= 0), clip_fraction = P(|r - 1| > eps).

`weights` (a host pool's `valid` flags, 0 or 1 per sample): every E[.] above, the advantage standardisation and both
diagnostics are then weighted means, so a sample of weight 0 changes neither the loss, its gradient nor the
diagnostics. Without weights (every JAX environment) the code is unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LossInfo(NamedTuple):
    """Scalars describing one loss evaluation."""

    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array
    clip_fraction: jax.Array


def standardize(x: jax.Array, eps: float = 1e-8, axis_name=None) -> jax.Array:
    """``(x - mean) / (std + eps)`` over all elements (of every device's equal-sized `x`, with `axis_name`)."""
    if axis_name is None:
        return (x - x.mean()) / (x.std() + eps)
    mean = jax.lax.pmean(x.mean(), axis_name)
    std = jnp.sqrt(jax.lax.pmean(jnp.square(x - mean).mean(), axis_name))
    return (x - mean) / (std + eps)


def weighted_mean(x: jax.Array, weights: jax.Array, axis_name=None) -> jax.Array:
    """``sum(w x) / sum(w)`` over all elements (of every device's, with `axis_name`); 0 when every weight is 0."""
    total, count = jnp.sum(weights * x), jnp.sum(weights)
    if axis_name is not None:
        total, count = jax.lax.psum(total, axis_name), jax.lax.psum(count, axis_name)
    return total / jnp.maximum(count, 1.0)


def weighted_standardize(x: jax.Array, weights: jax.Array, eps: float = 1e-8, axis_name=None) -> jax.Array:
    """`standardize` with the mean and std taken over the samples weighted by `weights` (same shape as `x`)."""
    mean = weighted_mean(x, weights, axis_name)
    std = jnp.sqrt(weighted_mean(jnp.square(x - mean), weights, axis_name))
    return (x - mean) / (std + eps)


def policy_loss_terms(log_ratio: jax.Array, advantages: jax.Array, clip_eps, objective: str) -> jax.Array:
    """Per-sample policy loss (to minimise) for ``objective in ("ppo", "spo")``; shapes [B]."""
    ratio = jnp.exp(log_ratio)
    if objective == "ppo":
        clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
        return -jnp.minimum(ratio * advantages, clipped * advantages)
    if objective == "spo":
        return -(ratio * advantages - jnp.abs(advantages) / (2.0 * clip_eps) * jnp.square(ratio - 1.0))
    raise ValueError(f"policy_objective must be 'ppo' or 'spo', got {objective!r}")


def value_loss_terms(values, old_values, targets, clip_eps, clip_value_loss: bool) -> jax.Array:
    """Per-sample value loss, ``0.5 (V - G)^2`` or its clipped PPO2 form; shapes [B]."""
    unclipped = jnp.square(values - targets)
    if not clip_value_loss:
        return 0.5 * unclipped
    clipped_values = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return 0.5 * jnp.maximum(unclipped, jnp.square(clipped_values - targets))


def ppo_loss(
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    values: jax.Array,
    old_values: jax.Array,
    targets: jax.Array,
    entropy: jax.Array,
    *,
    clip_eps,
    vf_coeff,
    entropy_coeff,
    normalize_advantages: bool = True,
    clip_value_loss: bool = True,
    objective: str = "ppo",
    axis_name=None,
    weights=None,
) -> tuple[jax.Array, LossInfo]:
    """The whole objective from per-sample arrays (all shape [B]). Returns ``(loss to minimise, LossInfo)``.

    Args:
      log_prob, old_log_prob: log pi(a|s) under the current and the rollout's policy.
      advantages, targets: GAE's advantages and value targets; old_values: the rollout's critic.
      values, entropy: the current critic and the policy's entropy.
      clip_eps, vf_coeff, entropy_coeff: scalars (may be traced): PPO's epsilon (also the value clip and SPO's
        radius), the value loss's and the entropy bonus's weights.
      normalize_advantages, clip_value_loss, objective: static choices (see the module docstring).
      axis_name: with data parallelism, advantages are standardised with every device's samples.
      weights: None, or [B] 0/1 weights (a host pool's `valid`): every mean and the standardisation are weighted.
    """
    if weights is None:
        mean, standardized = jnp.mean, lambda x: standardize(x, axis_name=axis_name)
    else:
        # The rollout's data in samples of weight 0 (advantage, target, old value and log-probability) may be garbage,
        # even non-finite: it is replaced by neutral values (advantage 0, target = old value, ratio 1) before use, so
        # the loss, its gradient and the diagnostics equal those computed from the weighted samples alone.
        weights = weights.astype(values.dtype)
        keep = weights > 0
        advantages = jnp.where(keep, advantages, 0.0)
        old_values = jnp.where(keep, old_values, jax.lax.stop_gradient(values))
        targets = jnp.where(keep, targets, old_values)
        old_log_prob = jnp.where(keep, old_log_prob, jax.lax.stop_gradient(log_prob))
        mean = lambda x: weighted_mean(x, weights)  # noqa: E731  (each device's own samples, as jnp.mean)
        standardized = lambda x: weighted_standardize(x, weights, axis_name=axis_name)  # noqa: E731
    if normalize_advantages:
        advantages = standardized(advantages)
    log_ratio = log_prob - old_log_prob
    policy_loss = mean(policy_loss_terms(log_ratio, advantages, clip_eps, objective))
    value_loss = mean(value_loss_terms(values, old_values, targets, clip_eps, clip_value_loss))
    entropy = mean(entropy)
    loss = policy_loss + vf_coeff * value_loss - entropy_coeff * entropy
    ratio = jnp.exp(log_ratio)
    info = LossInfo(
        policy_loss=policy_loss,
        value_loss=value_loss,
        entropy=entropy,
        approx_kl=jax.lax.stop_gradient(mean((ratio - 1.0) - log_ratio)),
        clip_fraction=jax.lax.stop_gradient(mean(jnp.abs(ratio - 1.0) > clip_eps)),
    )
    return loss, info
