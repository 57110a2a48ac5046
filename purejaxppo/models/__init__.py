"""Models: the flax networks (`networks`: MLP, CNN and GRU actor-critics) and the `Policy` interface every part of
the pipeline uses (`policies`; `make_policy` is the one reader of ``config.network``).

May import: jax, flax, distrax, the config and the env spec (`purejaxppo.envs.spec`) below it; never training or above.
"""
