"""Tasks: a model bound to its data, with the loss and metric contract the loop uses."""
