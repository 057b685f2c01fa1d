"""
Print requirements/constraints.txt for the environment of the interpreter running this script.

Usage (see `make lock`): <venv>/bin/python requirements/lock.py > requirements/constraints.txt

Every installed distribution is pinned exactly (pip and wheel excepted, setuptools included).
Local version tags are dropped (torch 2.13.0+cpu -> torch==2.13.0, which still selects the local
CPU wheel). The ros-* wheels also install egg-info metadata under upstream ROS package names
(rclpy, std_msgs, ...); those are not installable distributions and are listed as comments only.
"""

import importlib.metadata as metadata

HEADER = """\
# Full lock of the development/CI environment (Python 3.11, Linux x86_64, CPU).
# Generated from the venv built with requirements/base.in + requirements/dev.in by
# requirements/lock.py; regenerate with `make lock`. Used as a constraints file (`pip install -c`),
# so entries only pin what the .in files actually pull in.
#
# Traps this lock protects against:
# - torch: 2.13.0 resolves to the local CPU wheel (torch-2.13.0+cpu in /opt/wheels); anything that
#   lets pip choose a newer torch pulls GBs of CUDA wheels.
# - torchvision 0.28.0 on PyPI is a CUDA build; cliprt_core shims its missing ops on CPU torch.
# - numpy<2 (robosuite 1.4 segmentation rendering), mujoco 2.3.7 (>=3.10 breaks robosuite 1.4.0).
# - setuptools<80: newer setuptools silently disables colcon --symlink-install.
# - ROS Jazzy wheels are pinned (ros-rclpy 7.1.6, msgs 5.3.6); unpinned resolves to Kilted.
"""

EMBEDDED_NOTE = """\
# The ros-* wheels also ship egg-info metadata under the upstream ROS package names; pip freeze
# lists them, but they are not separately installable distributions, so they are not constraints:
"""

SKIP = {'pip', 'wheel', 'cliprt_ros', 'cliprt-ros'}


def main():
    pins, embedded = {}, {}
    for dist in metadata.distributions():
        name = dist.metadata['Name']
        if not name or name.lower() in SKIP:
            continue
        version = dist.version.split('+')[0]
        is_egg_info = str(getattr(dist, '_path', '')).endswith('.egg-info')
        target = embedded if is_egg_info else pins
        target[name] = version
    print(HEADER.rstrip('\n'))
    for name in sorted(pins, key=str.lower):
        print(f'{name}=={pins[name]}')
    if embedded:
        print()
        print(EMBEDDED_NOTE.rstrip('\n'))
        for name in sorted(embedded, key=str.lower):
            print(f'#   {name}=={embedded[name]}')


if __name__ == '__main__':
    main()
