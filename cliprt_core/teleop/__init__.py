"""Language-supervised teleoperation: commands -> primitives -> LIBERO action chunks."""
from cliprt_core.actions.execution import primitive_actions
from cliprt_core.teleop.mapping import CommandMapper, Decision, TextSimilarity, Translator
from cliprt_core.teleop.parser import parse_command, ParsedCommand
from cliprt_core.teleop.session import build_mapper, TeleopSession
from cliprt_core.teleop.settings import load_translator, TeleopConfig

__all__ = ['CommandMapper', 'Decision', 'ParsedCommand', 'TeleopConfig', 'TeleopSession',
           'TextSimilarity', 'Translator', 'build_mapper', 'load_translator', 'parse_command',
           'primitive_actions']
