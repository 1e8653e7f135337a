"""Launchers: run specs in child processes and stream their events to the faces."""
