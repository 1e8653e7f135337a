"""The engine: plans, schedules, averaging, BN recalibration and the training loop.

Headless: nothing here imports a face (Textual, ipywidgets).
"""
