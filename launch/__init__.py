"""Scripts outside the library: experiments, benchmarks and the GPU harness, cluster
launchers, data tools. Run from the repository root as modules, e.g.
``python -m launch.experiments.camvid_study``."""
