"""The pipeline: observe the world, reconcile (core), execute the plan inside its windows,
journal every step. ``run.run_once`` is where every command enters.
"""
