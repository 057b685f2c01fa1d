"""Helpers for tests that reuse one real LIBERO env across runs."""


class SharedEnv:
    """A real env reused across runs (env creation takes seconds): ``close()`` keeps it open."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def close(self):
        pass


class CrashingFactory:
    """
    Real LIBERO envs whose worker process dies (``os._exit``) at step 3 of episode ``episode``,
    the first ``times`` times it gets there (counted in files under ``marker_dir``, so the count
    survives the dead process). Picklable for spawned worker processes.
    """

    def __init__(self, base, marker_dir, episode, times=1):
        self.base, self.marker_dir, self.episode, self.times = base, marker_dir, episode, times

    def __call__(self, suite, task_id):
        return _CrashingEnv(self.base(suite, task_id), self)


class _CrashingEnv(SharedEnv):
    def __init__(self, env, plan):
        super().__init__(env)
        self.plan, self.index = plan, None

    def reset(self, init_state_index):
        self.index = init_state_index
        return self._env.reset(init_state_index)

    def step(self, action, render=True):
        import os
        from pathlib import Path

        if self.index == self.plan.episode and self._env.steps == 3:
            crashes = Path(self.plan.marker_dir)
            if len(list(crashes.glob('crash_*'))) < self.plan.times:
                (crashes / f'crash_{os.getpid()}').touch()
                os._exit(3)
        return self._env.step(action, render=render)

    def close(self):
        self._env.close()
