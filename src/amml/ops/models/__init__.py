"""Built-in models ops."""
