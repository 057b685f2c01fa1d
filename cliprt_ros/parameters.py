"""
ROS parameters from typed config classes: declare, read back, and refuse unknown overrides.

Every scalar setting of a config class (:func:`cliprt_core.config.leaves`) becomes one parameter
with the setting's default and help text. ROS has no None: an optional setting is declared with
its type's empty value (0, 0.0 or '') and reads back as None. Values go through the config system's
type checks, so a bad value fails at start-up with the parameter's name. A parameter given on the
command line or in a params file that the node does not declare is an error (a typo must never
silently fall back to a default, e.g. random weights).
"""

import typing

from cliprt_core.config import ConfigError, from_dict, leaves, merge, nest
from rcl_interfaces.msg import ParameterDescriptor

_EMPTY = {int: 0, float: 0.0, str: ''}
#: Parameters every rclpy node may take without declaring them.
_BUILTIN = ('use_sim_time', 'start_type_description_service')
_BUILTIN_PREFIXES = ('qos_overrides.',)


def declare_config(node, cls, exclude=(), dynamic=()):
    """Declare one parameter per setting of ``cls``; raise ConfigError for unknown overrides."""
    for leaf in leaves(cls, exclude).values():
        node.declare_parameter(leaf.name, to_parameter(leaf, leaf.default), ParameterDescriptor(
            description=leaf.description, read_only=leaf.name not in dynamic,
            dynamic_typing=_dynamic_typing(leaf)))
    check_overrides(node)


def read_config(node, cls, exclude=(), fixed=None):
    """Build ``cls`` from the node's parameters (plus ``fixed`` nested values)."""
    values = {name: from_parameter(leaf, node.get_parameter(name).value)
              for name, leaf in leaves(cls, exclude).items()}
    try:
        return from_dict(cls, merge(nest(values, cls), fixed or {}))
    except ConfigError as exc:
        raise ConfigError(f'invalid parameter: {exc}') from None


def config_to_parameters(config, cls, exclude=()):
    """``{parameter name: ROS value}`` of a config instance (the inverse of read_config)."""
    values = {}
    for name, leaf in leaves(cls, exclude).items():
        value = config
        for part in leaf.path:
            value = getattr(value, part)
        values[name] = to_parameter(leaf, value)
    return values


def check_overrides(node):
    """Raise ConfigError naming every overridden parameter that ``node`` did not declare."""
    # rclpy keeps the --ros-args / params-file / parameter_overrides values of this node here.
    overrides = getattr(node, '_parameter_overrides', {})
    unknown = sorted(name for name in overrides if not node.has_parameter(name)
                     and name not in _BUILTIN and not name.startswith(_BUILTIN_PREFIXES))
    if unknown:
        declared = sorted(p for p in node._parameters if p not in _BUILTIN)
        raise ConfigError(f'unknown parameter(s) for {node.get_name()}: {", ".join(unknown)}; '
                          f'valid parameters: {", ".join(declared)}')


def to_parameter(leaf, value):
    """Convert a setting's value to a ROS parameter value (None -> the type's empty value)."""
    if value is None:
        return _EMPTY.get(leaf.base_type, '')
    if isinstance(value, (tuple, list)):
        if str in typing.get_args(leaf.base_type):  # tasks [0, 3] -> '0,3' (the string form)
            return ','.join(str(v) for v in value)
        return list(value)
    return value


def from_parameter(leaf, value):
    """Convert a ROS parameter value to the setting's value (empty -> None if optional)."""
    if hasattr(value, 'tolist'):  # array.array from integer/double array parameters
        value = value.tolist()
    if leaf.optional and value == _EMPTY.get(leaf.base_type, ''):
        return None
    if str in typing.get_args(leaf.base_type) and type(value) in (int, float):
        return str(value)  # `-p tasks:=0` arrives as an integer; the setting is '0' or [0, ...]
    return value


def _dynamic_typing(leaf):
    # Unions (tasks: '0-9' or [0, 3]) and floats (`-p control_period:=1` arrives as an integer)
    # accept any parameter type; the config system then checks the value.
    base = leaf.base_type
    return bool(typing.get_args(base)) and typing.get_origin(base) is not typing.Literal \
        and base is not str or base is float
