"""
Deterministic parsing of a language motion command: axis, direction, magnitude and unit.

``parse_command('move the arm 10 cm to the left')`` -> ``ParsedCommand(axis='y', sign=1,
magnitude=0.1)``. Frame and direction words follow the shipped vocabularies (their
``description``): +x forward, +y left, +z up; roll / yaw ``clockwise`` = positive, pitch
``tilt ... down`` = positive; gripper ``close`` = +1, ``open`` = -1. Magnitudes are metres or
radians (``cm``, ``mm``, ``m``, ``in``, ``deg``, ``rad``; digits or number words, including the
vocabularies' spelling ``fourty``).

A command the parser cannot read completely is never guessed at: conflicting cues (``left and
up``, ``10 cm 5 cm``, a number without a unit, degrees for a translation) are listed in
``problems``; a command without any cue has ``axis`` None (the caller may fall back to text
similarity).
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import re

__all__ = ['ParsedCommand', 'parse_command', 'POSITION_AXES', 'ROTATION_AXES']

POSITION_AXES = ('x', 'y', 'z')
ROTATION_AXES = ('roll', 'pitch', 'yaw', 'rotate_gripper')

_UNITS = {
    'cm': ('position', 0.01), 'centimeter': ('position', 0.01),
    'centimeters': ('position', 0.01), 'centimetre': ('position', 0.01),
    'centimetres': ('position', 0.01), 'mm': ('position', 0.001),
    'millimeter': ('position', 0.001), 'millimeters': ('position', 0.001),
    'millimetre': ('position', 0.001), 'millimetres': ('position', 0.001),
    'm': ('position', 1.0), 'meter': ('position', 1.0), 'meters': ('position', 1.0),
    'metre': ('position', 1.0), 'metres': ('position', 1.0),
    'in': ('position', 0.0254), 'inch': ('position', 0.0254), 'inches': ('position', 0.0254),
    'deg': ('rotation', math.pi / 180), 'degree': ('rotation', math.pi / 180),
    'degrees': ('rotation', math.pi / 180), '°': ('rotation', math.pi / 180),
    'rad': ('rotation', 1.0), 'radian': ('rotation', 1.0), 'radians': ('rotation', 1.0),
}
_ONES = {'zero': 0, 'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5, 'six': 6, 'seven': 7,
         'eight': 8, 'nine': 9, 'ten': 10, 'eleven': 11, 'twelve': 12, 'thirteen': 13,
         'fourteen': 14, 'fifteen': 15, 'sixteen': 16, 'seventeen': 17, 'eighteen': 18,
         'nineteen': 19, 'a': 1, 'an': 1}
_TENS = {'twenty': 20, 'thirty': 30, 'forty': 40, 'fourty': 40, 'fifty': 50, 'sixty': 60,
         'seventy': 70, 'eighty': 80, 'ninety': 90}
# translation cues: word -> (axis, sign)
_MOVES = {
    'left': ('y', 1), 'leftward': ('y', 1), 'leftwards': ('y', 1),
    'right': ('y', -1), 'rightward': ('y', -1), 'rightwards': ('y', -1),
    'forward': ('x', 1), 'forwards': ('x', 1), 'ahead': ('x', 1), 'away': ('x', 1),
    'back': ('x', -1), 'backward': ('x', -1), 'backwards': ('x', -1), 'closer': ('x', -1),
    'up': ('z', 1), 'upward': ('z', 1), 'upwards': ('z', 1), 'raise': ('z', 1),
    'lift': ('z', 1), 'higher': ('z', 1),
    'down': ('z', -1), 'downward': ('z', -1), 'downwards': ('z', -1), 'lower': ('z', -1),
}
_CLOCKWISE = {'clockwise': 1, 'cw': 1, 'counterclockwise': -1, 'anticlockwise': -1, 'ccw': -1}
_GRIPPER = {'open': -1, 'release': -1, 'close': 1, 'grasp': 1, 'grip': 1, 'grab': 1}
_GRIPPER_NOUNS = {'gripper', 'hand', 'fingers', 'claw', 'wrist'}
_ROTATE_VERBS = {'rotate', 'turn', 'twist', 'spin'}
_TOKEN = re.compile(r'\d+(?:\.\d+)?|°|[a-z]+')


@dataclass(frozen=True)
class ParsedCommand:
    """What a command says: axis, sign (+1 / -1), magnitude (m or rad, >= 0; None if absent)."""

    text: str
    axis: str | None = None
    sign: int | None = None
    magnitude: float | None = None
    problems: tuple[str, ...] = ()
    cues: tuple[tuple[str, int], ...] = ()  # the conflicting (axis, sign) cues, if any

    @property
    def complete(self) -> bool:
        """Axis, sign and (except for the gripper) magnitude are known, without problems."""
        if self.problems or self.axis is None or self.sign is None:
            return False
        return self.axis == 'gripper' or self.magnitude is not None

    @property
    def signed_magnitude(self) -> float | None:
        """Return ``sign * magnitude`` (the vocabulary's convention), or None."""
        if self.magnitude is None or self.sign is None:
            return None
        return self.sign * self.magnitude


def _tokens(text: str) -> list[str]:
    text = re.sub(r'counter[\s-]+clockwise', 'counterclockwise', text.lower())
    text = re.sub(r'anti[\s-]+clockwise', 'anticlockwise', text)
    return _TOKEN.findall(text)


def _numbers(tokens: list[str]) -> list[tuple[float, int, int]]:
    """Return ``(value, first token, last token)`` of each number (digits or words)."""
    found, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if re.fullmatch(r'\d+(?:\.\d+)?', token):
            found.append((float(token), i, i))
            i += 1
            continue
        if token in _TENS or (token in _ONES and token not in ('a', 'an')):
            value, start = 0, i
            if token in _TENS:
                value = _TENS[token]
                i += 1
                unit = tokens[i] if i < len(tokens) else ''
                if unit in _ONES and _ONES[unit] < 10 and unit not in ('a', 'an'):
                    value += _ONES[unit]
                    i += 1
            else:
                value = _ONES[token]
                i += 1
            found.append((float(value), start, i - 1))
            continue
        if token in ('a', 'an') and i + 1 < len(tokens) and tokens[i + 1] in _UNITS:
            found.append((1.0, i, i))  # "a centimeter"
        i += 1
    return found


def _magnitude(tokens: list[str], problems: list[str]) -> tuple[str | None, float | None]:
    """Return (unit kind, magnitude) of the single ``<number> <unit>`` of the command."""
    quantities, bare = [], []
    for value, _, last in _numbers(tokens):
        unit = tokens[last + 1] if last + 1 < len(tokens) else None
        if unit in _UNITS:
            kind, scale = _UNITS[unit]
            quantities.append((kind, value * scale, f'{value:g} {unit}'))
        else:
            bare.append(f'{value:g}')
    if bare and not quantities:
        problems.append(f"a number without a unit ({', '.join(bare)}): say e.g. '5 cm' or "
                        f"'15 degrees'")
    if len(quantities) > 1:
        problems.append(f"more than one amount ({', '.join(q[2] for q in quantities)})")
    if len(quantities) != 1:
        return None, None
    kind, value, _ = quantities[0]
    return kind, value


def _rotation(words: set[str], tokens: list[str], problems: list[str]) -> tuple[str, int] | None:
    """Return (axis, sign) of a rotation command, or None if the command is no rotation."""
    turn = next((t for t in tokens if t in _CLOCKWISE), None)
    mentions = [a for a in ('roll', 'yaw', 'pitch', 'tilt') if a in words]
    rotate_gripper = bool(words & _ROTATE_VERBS) and bool(words & _GRIPPER_NOUNS)
    if rotate_gripper:
        mentions.append('rotate_gripper')
    if not mentions and not (turn and words & _ROTATE_VERBS):
        return None
    axes = {'tilt': 'pitch'}
    named = sorted({axes.get(m, m) for m in mentions})
    if len(named) > 1:
        problems.append(f"more than one rotation ({', '.join(named)})")
        return None
    if not named:
        problems.append('a rotation without its axis: say roll, tilt (pitch), yaw or rotate '
                        'the gripper')
        return None
    axis = named[0]
    if axis == 'pitch':
        ups = [t for t in tokens if t in ('up', 'upward', 'upwards', 'raise')]
        downs = [t for t in tokens if t in ('down', 'downward', 'downwards', 'lower')]
        if bool(ups) == bool(downs):
            problems.append("a tilt needs one direction: 'up' or 'down'")
            return None
        return axis, 1 if downs else -1
    signs = {_CLOCKWISE[t] for t in tokens if t in _CLOCKWISE}
    if len(signs) != 1:
        problems.append(f"{axis} needs one direction: 'clockwise' or 'counterclockwise'")
        return None
    return axis, signs.pop()


def parse_command(text: str) -> ParsedCommand:
    """Parse one motion command (see the module docstring); never raises for any text."""
    tokens = _tokens(str(text))
    words = set(tokens)
    problems: list[str] = []
    gripper = {_GRIPPER[t] for t in tokens if t in _GRIPPER}
    rotation = _rotation(words, tokens, problems)
    moves = {} if rotation or any('rotation' in p or 'tilt' in p for p in problems) else {
        _MOVES[t] for t in tokens if t in _MOVES}
    kind, magnitude = _magnitude(tokens, problems)
    if gripper and (moves or rotation) and not (rotation and rotation[0] == 'rotate_gripper'):
        problems.append('a gripper command together with a motion: give one at a time')
    if problems:
        return ParsedCommand(text, problems=tuple(problems))
    if rotation is not None:
        axis, sign = rotation
        if kind == 'position':
            problems.append(f'{axis} is a rotation but the amount is a distance')
        return ParsedCommand(text, axis, sign, magnitude if kind == 'rotation' else None,
                             tuple(problems))
    if moves:
        axes = sorted({a for a, _ in moves})
        if len(moves) > 1:
            named = ', '.join(t for t in dict.fromkeys(tokens) if t in _MOVES)
            problems.append(f'more than one direction ({named})' if len(axes) > 1
                            else f'opposite directions ({named})')
            amount = magnitude if kind == 'position' else None
            return ParsedCommand(text, magnitude=amount, problems=tuple(problems),
                                 cues=tuple(sorted(moves)))
        ((axis, sign),) = moves
        if kind == 'rotation':
            problems.append('a translation but the amount is an angle')
        return ParsedCommand(text, axis, sign, magnitude if kind == 'position' else None,
                             tuple(problems))
    if gripper:
        if len(gripper) > 1:
            return ParsedCommand(text, problems=('both open and close',))
        if magnitude is not None:
            return ParsedCommand(text, problems=('the gripper takes no amount',))
        return ParsedCommand(text, 'gripper', gripper.pop())
    if magnitude is not None:
        return ParsedCommand(text, problems=('an amount without a direction',))
    return ParsedCommand(text)
