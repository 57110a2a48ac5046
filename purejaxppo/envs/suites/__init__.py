"""One adapter per environment suite reached through an ``env_name`` prefix (``"brax:hopper"``), each built on
`base` so that an adapter holds only what is specific to its suite; its package (an optional extra) is imported only
inside the adapter's functions. A new suite is one file here plus one entry in `purejaxppo.envs.registry.SUITES`.
May import: jax, gymnax, `purejaxppo.extras`, `purejaxppo.envs.spec` and `base`.
"""
