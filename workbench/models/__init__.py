"""Model factories, registered by name in :data:`workbench.registry.MODELS`."""
