"""The command line: a thin layer over the engine and the store."""
