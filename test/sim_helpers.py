"""Helpers for tests that reuse one real LIBERO env across runs."""


class SharedEnv:
    """A real env reused across runs (env creation takes seconds): ``close()`` keeps it open."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def close(self):
        pass
