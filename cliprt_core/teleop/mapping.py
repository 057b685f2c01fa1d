"""
From a free-form motion command to one primitive of the active vocabulary, or a reasoned refusal.

:class:`CommandMapper` tries, in order:

1. the deterministic parser (:mod:`cliprt_core.teleop.parser`): a complete parse names exactly
   one primitive (axis + signed magnitude, or open / close) or the command is refused (a
   magnitude the vocabulary does not have is refused with the nearest primitives, never
   rounded); a parse with problems (conflicting directions, a number without a unit) is refused;
2. a user translator (:class:`Translator`, e.g. an LLM; none is bundled), if one is given;
3. text similarity (:class:`TextSimilarity`, the CLIP text encoder): cosine between the command
   and every phrase, restricted to the primitives consistent with what the parser did find
   (e.g. axis and direction of "move a bit to the left"); accepted only if the best score is at
   least ``min_similarity`` and leads the runner-up by ``min_margin``.

Anything else is refused: a refused command is never executed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Callable, Protocol, Sequence

from cliprt_core.actions import GRIPPER_AXIS, Vocabulary
from cliprt_core.teleop.parser import parse_command, ParsedCommand
import numpy as np

__all__ = ['CommandMapper', 'Decision', 'MAX_COMMAND_CHARS', 'TextSimilarity', 'Translator']

MAX_COMMAND_CHARS = 300


@dataclass(frozen=True)
class Decision:
    """The outcome for one command: the primitive to execute, or why nothing is executed."""

    command: str
    index: int | None  # primitive index in the vocabulary; None = refused
    phrase: str | None
    method: str  # 'parser' | 'translator' | 'similarity' | 'none'
    reason: str
    candidates: tuple[tuple[str, float], ...] = field(default=())  # best first, (phrase, score)

    @property
    def accepted(self) -> bool:
        return self.index is not None

    def feedback(self) -> str:
        """Return one line for a feedback topic or log."""
        head = (f'executing {self.phrase!r} ({self.method}: {self.reason})' if self.accepted
                else f'not executed: {self.reason}')
        if self.candidates and not self.accepted:
            shown = '; '.join(repr(p) if math.isnan(s) else f'{p!r} {s:.3f}'
                              for p, s in self.candidates)
            head += f'; candidates: {shown}'
        return f'{self.command!r}: {head}'


class Translator(Protocol):
    """
    A pluggable command translator (e.g. an LLM prompted with the vocabulary's phrases).

    ``translate`` returns one phrase of ``vocabulary`` (executed if it is one), or None when it
    cannot decide (the mapper then falls back to text similarity).
    """

    def translate(self, command: str, vocabulary: Vocabulary) -> str | None: ...


class TextSimilarity:
    """Cosine similarity of a command to the vocabulary's phrases with a text encoder."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], phrases: Sequence[str]) -> None:
        """``encode(texts)`` returns ``[N, D]`` embeddings (normalised here)."""
        self._encode = encode
        self.phrases = list(phrases)
        self._phrases = self._normalised(self.phrases)

    def _normalised(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._encode(texts), dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def scores(self, command: str) -> np.ndarray:
        """Return the cosine of ``command`` to every phrase, ``[K]``."""
        return self._normalised([command])[0] @ self._phrases.T

    @classmethod
    def from_policy(cls, policy, phrases: Sequence[str]) -> 'TextSimilarity':
        """Use the text tower of a :class:`~cliprt_core.inference.Policy` (one torch thread)."""
        import torch

        def encode(texts: list[str]) -> np.ndarray:
            with torch.inference_mode():
                tokens = policy.model.tokenize(texts).to(policy.device)
                return policy.model.encode_text(tokens).float().cpu().numpy()

        return cls(encode, phrases)


class CommandMapper:
    """Map commands to primitives of ``vocabulary`` (see the module docstring)."""

    def __init__(self, vocabulary: Vocabulary, similarity: TextSimilarity | None = None,
                 translator: Translator | None = None, min_similarity: float = 0.9,
                 min_margin: float = 0.02, top_k: int = 3) -> None:
        if similarity is not None and similarity.phrases != vocabulary.phrases:
            raise ValueError('the similarity scorer was built for other phrases')
        self.vocabulary = vocabulary
        self.similarity = similarity
        self.translator = translator
        self.min_similarity = float(min_similarity)
        self.min_margin = float(min_margin)
        self.top_k = int(top_k)

    def decide(self, command: str) -> Decision:
        """Return the decision for one command (never raises for any text)."""
        text = ' '.join(str(command).split())
        if not text:
            return Decision(text, None, None, 'none', 'empty command')
        if len(text) > MAX_COMMAND_CHARS:
            return Decision(text[:40] + '...', None, None, 'none',
                            f'command longer than {MAX_COMMAND_CHARS} characters')
        parsed = parse_command(text)
        if parsed.problems:
            reason = 'ambiguous: ' + '; '.join(parsed.problems)
            if parsed.cues:  # each direction that was named, nearest magnitude first
                options = [i for axis, sign in parsed.cues
                           for i in self._nearest(ParsedCommand(text, axis, sign,
                                                                parsed.magnitude))[:2]]
                return self._refuse(text, 'parser', reason, options, ordered=True)
            partial = self._consistent(parsed) if parsed.axis or self.similarity else []
            return self._refuse(text, 'parser', reason, partial)
        if parsed.complete:
            return self._from_parse(text, parsed)
        if self.translator is not None:
            decision = self._from_translator(text)
            if decision is not None:
                return decision
        allowed = self._consistent(parsed)
        if not allowed:
            return self._refuse(text, 'parser', f'the vocabulary has no {parsed.axis} primitive')
        if self.similarity is None:
            return self._refuse(text, 'none', 'not understood (no text encoder configured)')
        return self._from_similarity(text, parsed, allowed)

    # --- steps -----------------------------------------------------------------------------
    def _from_parse(self, text: str, parsed: ParsedCommand) -> Decision:
        vocab = self.vocabulary
        if parsed.axis == GRIPPER_AXIS:
            hits = [i for i, p in enumerate(vocab.primitives)
                    if p.changes_gripper and p.magnitude == float(parsed.sign)]
            what = 'close' if parsed.sign > 0 else 'open'
        else:
            target = parsed.signed_magnitude
            hits = [i for i, p in enumerate(vocab.primitives)
                    if p.axis == parsed.axis and p.magnitude is not None
                    and math.isclose(p.magnitude, target, rel_tol=1e-3, abs_tol=1e-9)]
            what = f'{parsed.axis} {_amount(parsed.axis, target)}'
        if len(hits) == 1:
            return Decision(text, hits[0], vocab.phrases[hits[0]], 'parser', what)
        nearest = self._nearest(parsed)
        return self._refuse(text, 'parser', f"vocabulary '{vocab.name}' has no primitive for "
                            f'{what}', nearest, ordered=True)

    def _from_translator(self, text: str) -> Decision | None:
        try:
            phrase = self.translator.translate(text, self.vocabulary)
        except Exception as exc:  # noqa: B902 - a user plug-in must not stop the node
            return self._refuse(text, 'translator', f'translator failed: '
                                f'{type(exc).__name__}: {exc}')
        if phrase is None:
            return None
        if phrase not in self.vocabulary.phrases:
            return self._refuse(text, 'translator', f'translator answered {phrase!r}, which is '
                                f"not a phrase of '{self.vocabulary.name}'")
        index = self.vocabulary.phrases.index(phrase)
        return Decision(text, index, phrase, 'translator', 'translated')

    def _from_similarity(self, text: str, parsed: ParsedCommand,
                         allowed: list[int]) -> Decision:
        scores = self.similarity.scores(text)
        order = sorted(allowed, key=lambda i: -scores[i])
        top = tuple((self.vocabulary.phrases[i], round(float(scores[i]), 4))
                    for i in order[:self.top_k])
        best = float(scores[order[0]])
        margin = best - float(scores[order[1]]) if len(order) > 1 else math.inf
        within = '' if parsed.axis is None else f' (among the {len(allowed)} {parsed.axis} ' \
            f'primitives the parser allows)'
        if best < self.min_similarity:
            return self._refuse(text, 'similarity', f'unknown command: best similarity '
                                f'{best:.3f} < {self.min_similarity}{within}', top=top)
        if margin < self.min_margin:
            return self._refuse(text, 'similarity', f'ambiguous: the two best phrases are '
                                f'{margin:.3f} apart (< {self.min_margin}){within}', top=top)
        return Decision(text, order[0], self.vocabulary.phrases[order[0]], 'similarity',
                        f'similarity {best:.3f}, margin {margin:.3f}{within}', top)

    # --- helpers ---------------------------------------------------------------------------
    def _consistent(self, parsed: ParsedCommand) -> list[int]:
        """Return the primitives that agree with what was parsed (all if nothing was)."""
        out = []
        for i, p in enumerate(self.vocabulary.primitives):
            if parsed.axis is not None and p.axis != parsed.axis:
                continue
            if parsed.sign is not None and (p.magnitude is None or p.magnitude * parsed.sign < 0):
                continue
            out.append(i)
        return out

    def _nearest(self, parsed: ParsedCommand) -> list[int]:
        same = self._consistent(ParsedCommand(parsed.text, parsed.axis, parsed.sign))
        target = parsed.signed_magnitude
        if target is None:
            return same
        return sorted(same, key=lambda i: abs(self.vocabulary.primitives[i].magnitude - target))

    def _refuse(self, text: str, method: str, reason: str, indices: Sequence[int] = (),
                top: tuple[tuple[str, float], ...] | None = None,
                ordered: bool = False) -> Decision:
        """Refuse; the candidates are ``indices`` (by similarity unless ``ordered``)."""
        if top is None:
            indices = list(indices)
            scores = self.similarity.scores(text) if self.similarity and indices else None
            if scores is not None and not ordered:
                indices.sort(key=lambda i: -scores[i])
            top = tuple((self.vocabulary.phrases[i],
                         round(float(scores[i]), 4) if scores is not None else math.nan)
                        for i in indices[:self.top_k])
        return Decision(text, None, None, method, reason, top)


def _amount(axis: str, value: float) -> str:
    if axis in ('x', 'y', 'z'):
        return f'{value * 100:+g} cm'
    return f'{math.degrees(value):+.4g} deg'
