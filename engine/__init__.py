"""hftx engine: the only Python that calls the Lua function library."""
