"""Scale: many seeds, many settings and many devices, each as one compiled program over the training pipeline.

- `sweeps`: `sweep` (hyperparameter grids x seeds, vmapped, sharded over the devices).
- `population`: `pbt` (population-based training in one program).
- `parallel`: data parallelism (one run's environments split over devices).
- `processes`: several processes (hosts) as one run: joining them, splitting seeds, gathering, a lost process.

May import: the training pipeline and everything below it; never runs or the command line.
"""
