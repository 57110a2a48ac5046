"""The host side of a run: what lives in files and on the terminal.

- `checkpoint`: the run directory format, saving and restoring training state, exact resume.
- `policy`: `load_policy` (a trained policy from a run directory, ready to act and evaluate).
- `export`: ONNX and StableHLO export of a policy.
- `logs`, `progress`, `runlock`: metrics.jsonl and summaries, the progress bar, one process per run directory.
- `plotting`, `compare`: learning curves, lineage plots, GIFs, and tables of runs side by side.
- `compile_cache`: the command line's persistent compilation cache (where, how to move or switch it off).

May import: everything below it (scale, training, models, config, envs, core); never the command line.
"""
