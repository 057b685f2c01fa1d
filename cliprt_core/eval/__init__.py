"""
LIBERO evaluation: the episode state machine, the parallel resumable runner, results files.

API used by ``cliprt-eval`` and by the ROS LIBERO bridge (which must produce identical results):
``Episode`` / ``run_episode`` (episode.py), ``ResultsDir`` (results.py), ``run_evaluation``
(runner.py), ``EvalConfig`` (config.py).

Names are imported on first use: env worker processes import ``cliprt_core.eval.worker`` and
must not pay for what the main process needs (torch, plotting).
"""
from __future__ import annotations

from cliprt_core.lazy import lazy_exports

_EXPORTS = {
    'EvalConfig': 'config', 'load_eval_config': 'config', 'parse_tasks': 'config',
    'report': 'report',
    'ChunkFn': 'episode', 'Episode': 'episode', 'EpisodeResult': 'episode',
    'EpisodeTiming': 'episode', 'format_error': 'episode', 'run_episode': 'episode',
    'video_name': 'episode',
    'ResultsDir': 'results', 'ResultsMismatchError': 'results', 'record_key': 'results',
    'query_chunks': 'runner', 'run_evaluation': 'runner',
    'markdown_table': 'stats', 'summarize': 'stats', 'wilson_interval': 'stats',
    'EpisodeHost': 'worker', 'LiberoEnvFactory': 'worker', 'failure_record': 'worker',
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
