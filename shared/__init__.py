"""Code shared by the deployable functions: configuration, storage, cache, domain and HTTP helpers.

Nothing here opens a socket at import time; connections are made lazily, on first use, by `instance.state()`.
"""
