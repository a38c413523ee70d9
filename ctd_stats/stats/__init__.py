"""The statistics floor (numpy/scipy only): p-values, FWER procedures, curves, intervals, the
delegation rule, LTT budget calibration, the randomised boundary step, Pareto testing, budget sweeps,
planning, simulation, baselines, DV targets and cascade metrics.

Nothing here knows about files, specs or certificates; every higher stage builds on these modules.
"""
