"""Built-in sink ops: write tables out of a workflow."""
