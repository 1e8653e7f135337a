"""SWA Workbench: an experiment workbench for "Stochastic Weight Averaging Revisited".

Python API::

    import workbench
    result = workbench.run("quickstart", overrides=["budget.epochs=10"])
    result.run_id, result.metrics["final/average_test_acc"], result.average_state_dict

Importing this package is cheap: torch and MLflow load on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"


def run(spec, **kwargs):
    """Train one run (see :func:`workbench.engine.run.run`)."""
    from workbench.engine.run import run as _run

    return _run(spec, **kwargs)


__all__ = ["run", "__version__"]
