"""Built-in transforms ops."""
