"""Built-in sources ops."""
