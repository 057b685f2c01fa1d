"""Console entry points of cliprt_core (``cliprt-*`` scripts); each module has a ``main(argv)``."""
