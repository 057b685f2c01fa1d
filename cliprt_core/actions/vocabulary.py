"""
Language motion-primitive vocabularies (data files) and their loader.

A vocabulary is a JSON file::

    {"name": str, "description": str, "dimensions": [str, ...],
     "primitives": [{"phrase": str, "axis": str, "magnitude": float | null,
                     "vector": [float, ...], "changes_gripper": bool}, ...]}

Two ship with the package (see their ``description`` for units and sign conventions):
``pretrain_50`` (the CLIP-RT pretraining classes, 7-D deltas, gripper -1 open / +1 close) and
``finetune_58`` (the authors' fine-tuning lookup table, 8-D, gripper 1 open / 0 close).
For movement primitives the gripper entry of ``vector`` is 0 and means "keep"; only
``changes_gripper`` says whether a primitive commands the gripper. For gripper primitives
``magnitude`` is the canonical command: -1.0 = open, +1.0 = close.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = [
    'GRIPPER_AXIS', 'GRIPPER_OPEN', 'GRIPPER_CLOSE', 'Primitive', 'Vocabulary', 'VocabularyError',
    'available_vocabularies', 'load_vocabulary', 'vocabulary_from_dict',
]

GRIPPER_AXIS = 'gripper'
GRIPPER_OPEN = -1.0   # canonical gripper command (magnitude of the "open" primitive)
GRIPPER_CLOSE = 1.0   # canonical gripper command (magnitude of the "close" primitive)

_TOP_KEYS = {'name', 'description', 'dimensions', 'primitives'}
_PRIMITIVE_KEYS = {'phrase', 'axis', 'magnitude', 'vector', 'changes_gripper'}


class VocabularyError(ValueError):
    """A vocabulary file or object is invalid, or a name / phrase is unknown."""


@dataclass(frozen=True)
class Primitive:
    """One language motion primitive: a phrase and the action vector it stands for."""

    phrase: str
    axis: str
    magnitude: float | None
    vector: tuple[float, ...]
    changes_gripper: bool


@dataclass(frozen=True)
class Vocabulary:
    """An ordered, validated set of primitives; index ``k`` is the class id everywhere."""

    name: str
    dimensions: tuple[str, ...]
    primitives: tuple[Primitive, ...]
    description: str = ''
    _by_phrase: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)
    _vectors: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _validate(self.name, self.dimensions, self.primitives)
        vectors = np.array([p.vector for p in self.primitives], dtype=np.float32)
        vectors.setflags(write=False)
        by_phrase = {p.phrase: i for i, p in enumerate(self.primitives)}
        object.__setattr__(self, '_by_phrase', by_phrase)
        object.__setattr__(self, '_vectors', vectors)

    def __hash__(self) -> int:  # cheap and consistent with the generated __eq__
        return hash((self.name, self.dimensions, tuple(self._by_phrase)))

    def __len__(self) -> int:
        return len(self.primitives)

    @property
    def phrases(self) -> list[str]:
        """Return the phrases in class-index order (what the text encoder embeds)."""
        return [p.phrase for p in self.primitives]

    @property
    def vectors(self) -> np.ndarray:
        """Read-only float32 array [K, D] of the primitives' vectors."""
        return self._vectors

    def index(self, phrase: str) -> int:
        """Class index of ``phrase`` (exact string); raises VocabularyError if absent."""
        try:
            return self._by_phrase[phrase]
        except KeyError:
            raise VocabularyError(
                f"phrase {phrase!r} is not in vocabulary '{self.name}'") from None

    def vector(self, index: int) -> np.ndarray:
        """Vector of primitive ``index`` as a new float32 array [D]."""
        if not -len(self) <= index < len(self):
            raise IndexError(
                f"primitive index {index} out of range for '{self.name}' ({len(self)})")
        return self._vectors[index].copy()

    def find(self, axis: str, magnitude: float, rel_tol: float = 1e-3) -> int:
        """Index of the unique primitive with this axis and (approximately) this magnitude."""
        hits = [i for i, p in enumerate(self.primitives)
                if p.axis == axis and p.magnitude is not None
                and math.isclose(p.magnitude, magnitude, rel_tol=rel_tol, abs_tol=1e-12)]
        if len(hits) != 1:
            what = 'no primitive' if not hits else f'{len(hits)} primitives'
            raise VocabularyError(
                f"vocabulary '{self.name}' has {what} with axis {axis!r} "
                f'and magnitude {magnitude!r}')
        return hits[0]


def available_vocabularies() -> list[str]:
    """Names of the vocabularies shipped with the package."""
    folder = resources.files(__package__).joinpath('vocabularies')
    return sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith('.json'))


def load_vocabulary(name_or_path: str | Path) -> Vocabulary:
    """Load a shipped vocabulary by name ('pretrain_50', 'finetune_58') or a JSON file."""
    text_name = str(name_or_path)
    shipped = available_vocabularies()
    if not isinstance(name_or_path, Path) and text_name in shipped:
        source = f"shipped vocabulary '{text_name}'"
        entry = resources.files(__package__).joinpath('vocabularies', f'{text_name}.json')
        text = entry.read_text('utf-8')
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise VocabularyError(
                f"unknown vocabulary {text_name!r}: not a shipped name ({', '.join(shipped)}) "
                f'and not an existing file')
        source = str(path)
        text = path.read_text('utf-8')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VocabularyError(f'{source}: invalid JSON: {exc}') from exc
    try:
        return vocabulary_from_dict(data)
    except VocabularyError as exc:
        raise VocabularyError(f'{source}: {exc}') from None


def vocabulary_from_dict(data: Mapping[str, Any]) -> Vocabulary:
    """Build a Vocabulary from the parsed JSON schema (strict: unknown keys are errors)."""
    if not isinstance(data, Mapping):
        raise VocabularyError('top level must be a JSON object')
    _check_keys(data, _TOP_KEYS, {'description'}, 'top level')
    name, description = data['name'], data.get('description', '')
    if not isinstance(name, str) or not name:
        raise VocabularyError("'name' must be a non-empty string")
    if not isinstance(description, str):
        raise VocabularyError("'description' must be a string")
    dims = data['dimensions']
    if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
        raise VocabularyError("'dimensions' must be a list of strings")
    raw = data['primitives']
    if not isinstance(raw, list):
        raise VocabularyError("'primitives' must be a list")
    prims = []
    for i, item in enumerate(raw):
        where = f'primitives[{i}]'
        if not isinstance(item, Mapping):
            raise VocabularyError(f'{where}: must be an object')
        _check_keys(item, _PRIMITIVE_KEYS, set(), where)
        vec, mag, flag = item['vector'], item['magnitude'], item['changes_gripper']
        if not isinstance(vec, list) or not all(_is_number(v) for v in vec):
            raise VocabularyError(f"{where}: 'vector' must be a list of numbers")
        if mag is not None and not _is_number(mag):
            raise VocabularyError(f"{where}: 'magnitude' must be a number or null")
        if not isinstance(flag, bool):
            raise VocabularyError(f"{where}: 'changes_gripper' must be true or false")
        prims.append(Primitive(phrase=item['phrase'], axis=item['axis'],
                               magnitude=None if mag is None else float(mag),
                               vector=tuple(float(v) for v in vec), changes_gripper=flag))
    return Vocabulary(name=name, dimensions=tuple(dims), primitives=tuple(prims),
                      description=description)


def _validate(name: str, dims: tuple[str, ...], prims: tuple[Primitive, ...]) -> None:
    if not dims:
        raise VocabularyError(f"vocabulary '{name}': 'dimensions' is empty")
    if len(set(dims)) != len(dims):
        raise VocabularyError(f"vocabulary '{name}': duplicate dimension names in {list(dims)}")
    if not prims:
        raise VocabularyError(f"vocabulary '{name}' has no primitives")
    seen: dict[str, int] = {}
    for i, p in enumerate(prims):
        where = f"vocabulary '{name}', primitive {i}"
        if not isinstance(p.phrase, str) or not p.phrase.strip():
            raise VocabularyError(f"{where}: 'phrase' must be a non-empty string")
        if not isinstance(p.axis, str) or not p.axis:
            raise VocabularyError(f"{where} ({p.phrase!r}): 'axis' must be a non-empty string")
        key = ' '.join(p.phrase.lower().split())
        if key in seen:
            raise VocabularyError(
                f'{where}: duplicate phrase {p.phrase!r} (same as primitive {seen[key]})')
        seen[key] = i
        if len(p.vector) != len(dims):
            raise VocabularyError(f'{where} ({p.phrase!r}): vector has {len(p.vector)} values, '
                                  f'expected {len(dims)} (dimensions {list(dims)})')
        if not all(math.isfinite(v) for v in p.vector):
            raise VocabularyError(f'{where} ({p.phrase!r}): vector has non-finite values')
        if p.magnitude is not None and not math.isfinite(p.magnitude):
            raise VocabularyError(f'{where} ({p.phrase!r}): magnitude is not finite')


def _check_keys(data: Mapping[str, Any], allowed: set[str], optional: set[str],
                where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise VocabularyError(f'{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}')
    missing = sorted(allowed - optional - set(data))
    if missing:
        raise VocabularyError(f'{where}: missing key(s) {missing}')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
