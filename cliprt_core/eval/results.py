"""
The results directory of an evaluation (shared by ``cliprt-eval`` and the ROS LIBERO bridge).

::

    <results_dir>/
      run.json         protocol settings of the run; a resume with different ones is refused
      episodes.jsonl   one JSON line per finished episode, appended + fsynced (the source of truth)
      episodes.corrupt.jsonl   torn or corrupted lines moved out of episodes.jsonl (kept, reported)
      summary.json     per task / suite / overall success, Wilson 95% intervals, time breakdown
      results.md       the same as a Markdown table
      success.png      bar chart with Wilson whiskers
      videos/<suite>/task00_ep000_{success,failure}.mp4   (optional)

A killed run loses at most the episodes in flight: finished ones are on disk and
``done_episodes()`` tells a resumed run what to skip. Reading skips torn or corrupted lines (with
a warning) and never fails; a run that starts (``check_run``) moves them to
``episodes.corrupt.jsonl`` first, so its new episodes never land behind a broken line.

Several writers may share one folder (the ROS evaluation with ``--num-envs N``: N bridges, each
running a disjoint shard, in threads or processes): appends, the start-up repair and the summary
each hold an exclusive ``flock`` on ``.results.lock`` in the folder, so no writer truncates
another's line in progress, and the last summary written includes every appended episode.
"""
from __future__ import annotations

from contextlib import contextmanager
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterable
import warnings

from cliprt_core.atomic import (append_jsonl, atomic_write_json, atomic_write_text,
                                clean_stale_temp_files, repair_jsonl, scan_jsonl)
from cliprt_core.eval.episode import EpisodeResult, video_name
from cliprt_core.eval.stats import markdown_table, summarize

EpisodeKey = tuple[str, int, int]  # (suite, task_id, init state index)


class ResultsMismatchError(ValueError):
    """The results directory holds a run made with different protocol settings."""


def record_key(record: dict[str, Any]) -> EpisodeKey:
    return (str(record['suite']), int(record['task_id']), int(record['episode']))


def is_episode_record(record: Any) -> bool:
    """Tell whether a dict is a finished episode: a usable key and a success flag."""
    try:
        record_key(record)
    except (KeyError, TypeError, ValueError):
        return False
    return isinstance(record.get('success'), bool)


class ResultsDir:
    """Read and write one evaluation's results directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.episodes_path = self.path / 'episodes.jsonl'
        self.corrupt_path = self.path / 'episodes.corrupt.jsonl'
        self.run_path = self.path / 'run.json'
        self.summary_path = self.path / 'summary.json'
        self.table_path = self.path / 'results.md'
        self.plot_path = self.path / 'success.png'
        self.videos_dir = self.path / 'videos'

    # --- run settings --------------------------------------------------------------------------
    def check_run(self, settings: dict[str, Any], write: bool = True) -> None:
        """
        Record the run's protocol settings, or verify they match those of the earlier run.

        ``write=False`` only verifies (nothing is created): callers check before loading a
        policy and record once it loaded, so a failed start leaves no run.json behind. A
        recording (re)start also repairs the folder: temporary files of killed writes are
        removed and bad lines of episodes.jsonl are quarantined (:meth:`repair`).
        """
        previous = self._run_settings()
        if previous is not None:
            different = {k: (previous.get(k), v) for k, v in settings.items()
                         if k in previous and previous[k] != v}
            if different:
                details = ', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in different.items())
                raise ResultsMismatchError(
                    f'{self.path} holds results of a run with different settings ({details}); '
                    'use another --results-dir or delete it')
            settings = {**previous, **settings}
        if write:
            with self.locked():
                clean_stale_temp_files(self.path, recursive=True)
                self.repair()
                atomic_write_json(self.run_path, settings)

    @contextmanager
    def locked(self):
        """Hold the folder's writer lock (threads and processes; local file systems)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / '.results.lock', 'a') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- episodes ------------------------------------------------------------------------------
    def append(self, result: EpisodeResult | dict[str, Any]) -> dict[str, Any]:
        """Append one finished episode (atomically: a line is either complete or absent)."""
        record = result.to_record() if isinstance(result, EpisodeResult) else dict(result)
        if record.get('video'):
            record['video'] = self._relative(record['video'])
        with self.locked():
            append_jsonl(self.episodes_path, record)
        return record

    def repair(self) -> int:
        """
        Move torn or corrupted lines of episodes.jsonl to episodes.corrupt.jsonl (warned).

        Only for a writer that owns the folder (it rewrites episodes.jsonl); returns the count.
        """
        _, bad = repair_jsonl(self.episodes_path, self.corrupt_path, valid=is_episode_record)
        if bad:
            lines = ', '.join(str(number) for number, _ in bad[:10])
            warnings.warn(f'{self.episodes_path}: {len(bad)} torn or corrupted line(s) (line '
                          f'{lines}) moved to {self.corrupt_path.name}; their episodes run again')
        return len(bad)

    def records(self) -> list[dict[str, Any]]:
        """
        Finished episodes, each once (a duplicate line, e.g. from two writers, is ignored).

        Read-only: torn or corrupted lines are skipped with a warning (see :meth:`repair`).
        """
        records, bad = scan_jsonl(self.episodes_path, valid=is_episode_record)
        tail = self._unfinished_tail() if bad else None
        complete = [n for n, _ in bad if n != tail]
        if complete:
            warnings.warn(f'{self.episodes_path}: skipped {len(complete)} corrupted line(s) '
                          f"(line {', '.join(str(n) for n in complete[:10])})")
        seen: dict[EpisodeKey, dict[str, Any]] = {}
        for record in records:
            key = record_key(record)
            if key in seen:
                warnings.warn(f'{self.episodes_path}: duplicate episode {key} ignored')
                continue
            seen[key] = record
        return list(seen.values())

    def _unfinished_tail(self) -> int | None:
        """Return the number of a last line without a newline (a write in progress), if any."""
        data = self.episodes_path.read_bytes()
        return None if data.endswith(b'\n') else data.count(b'\n') + 1

    def done_episodes(self) -> set[EpisodeKey]:
        """Keys of the finished episodes: what a resumed run skips."""
        return {record_key(r) for r in self.records()}

    def video_path(self, suite: str, task_id: int, episode: int) -> Path:
        """Return the base video path of an episode (it adds ``_success``/``_failure``)."""
        return self.videos_dir / video_name(suite, task_id, episode)

    # --- summary -------------------------------------------------------------------------------
    def write_summary(self, expected: Iterable[EpisodeKey] | None = None,
                      run: dict[str, Any] | None = None, plot: bool = True) -> dict[str, Any]:
        """
        Write summary.json, results.md and success.png from episodes.jsonl; return the summary.

        ``expected``: the episodes the run was asked for (to report what is still missing).
        """
        with self.locked():
            return self._write_summary(expected, run, plot)

    def _write_summary(self, expected, run, plot):
        records = self.records()
        if expected is not None:
            wanted = set(expected)
            records = [r for r in records if record_key(r) in wanted]
            missing = len(wanted - {record_key(r) for r in records})
        else:
            missing = 0
        summary = summarize(records)
        summary['complete'] = missing == 0
        summary['missing_episodes'] = missing
        summary['run'] = run if run is not None else self._run_settings(strict=False)
        summary['files'] = {'episodes': self.episodes_path.name, 'table': self.table_path.name,
                            'plot': self.plot_path.name if plot else None}
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.summary_path, summary)
        title = '# LIBERO evaluation\n\n'
        note = '' if missing == 0 else f'\n{missing} requested episode(s) not finished yet.\n'
        atomic_write_text(self.table_path, title + markdown_table(summary) + note)
        if plot:
            from cliprt_core.eval.plots import plot_success

            plot_success(summary, self.plot_path)
        return summary

    def _run_settings(self, strict: bool = True) -> dict[str, Any] | None:
        """run.json; a corrupted one is an error (``strict``) or a warning and None."""
        if not self.run_path.exists():
            return None
        try:
            settings = json.loads(self.run_path.read_text(encoding='utf-8'))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            settings, problem = None, f'is corrupted ({exc})'
        else:
            problem = '' if isinstance(settings, dict) else 'is not a JSON object'
        if not problem:
            return settings
        message = (f'{self.run_path} {problem}; delete it to continue (the finished episodes '
                   f'are kept)')
        if strict:
            raise ResultsMismatchError(message)
        warnings.warn(message)
        return None

    def _relative(self, path: str) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.path.resolve()))
        except ValueError:
            return str(path)
