"""Pure maths on arrays and scalars: GAE, PPO's and SPO's losses, the optimiser step, running statistics, the
named random streams.

Nothing here knows about environments, networks, configs or files: every function takes the arrays and the scalars it
needs (``gae_advantages(rewards, values, next_values, terminated, truncated, gamma, gae_lambda)``), so each can be
tested against a closed form or an independent reference. `per_env` runs GAE and the discounted return along each
environment's own sequence when an asynchronous pool's rows interleave environments. May import: jax, optax and each
other (streams, gae, per_env, losses, optim, normalize, in that order); nothing else of purejaxppo.
"""
