"""Tracking: MLflow runs, written and read through this package only.

=================  ==========================================================
``mlflow_sink``    the writer (one store URI, a run per spec, a batch per epoch
                   that also tags the epoch) and ``client_for``
``records``        plain data: run records, studies (``Item``, ``group_items``),
                   histories ``{metric: (steps, values)}``; no MLflow import
``queries``        one paginated ``search`` and the queries built on it: records,
                   a study's children and parent, active runs, metric histories
``artifacts``      file lists, text artifacts, spec / weights / samples downloads
``store``          ``RunStore``, the faces' protocol, and ``MlflowStore``
=================  ==========================================================

Layering: faces above launch / analysis above engine / tracking; nothing here imports
a face, the analyses or torch at import time.
"""
