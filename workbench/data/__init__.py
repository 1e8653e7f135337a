"""Dataset loaders, registered by name in :data:`workbench.registry.DATASETS`."""
