"""
Build script for the `cliprt_ros` ament_python package.

One ROS 2 package (package.xml at the repo root) installs two Python packages:
``cliprt_core`` (ROS-free library) and ``cliprt_ros`` (thin rclpy nodes).

Dependencies: ``install_requires`` is deliberately light. The real, pinned dependency set
(torch CPU wheel, open_clip, rclpy wheels, LIBERO, ...) lives in ``requirements/*.in`` and is
locked by ``requirements/constraints.txt``; ``make venv`` installs it. Letting pip resolve torch
from here would pull a newer CUDA torch (GBs), so it is not listed.
"""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE_NAME = 'cliprt_ros'
HERE = os.path.dirname(os.path.abspath(__file__))


def _tree_data_files(top, share_prefix):
    """
    Return data_files entries for every file under ``top`` (recursive, keeping subfolders).

    Paths are relative to the repo root (setuptools requirement); computed at build time so
    files added later are installed without editing this script.
    """
    entries = {}
    for root, dirs, files in os.walk(os.path.join(HERE, top)):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        rel_root = os.path.relpath(root, HERE)
        for name in sorted(files):
            if name.endswith(('.pyc', '~')):
                continue
            dest = os.path.join(share_prefix, rel_root)
            entries.setdefault(dest, []).append(os.path.join(rel_root, name))
    return sorted(entries.items())


def _data_files():
    share = os.path.join('share', PACKAGE_NAME)
    files = [
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE_NAME]),
        (share, ['package.xml']),
    ]
    launch_files = sorted(
        os.path.relpath(p, HERE) for p in glob(os.path.join(HERE, 'launch', '*.launch.py')))
    if launch_files:
        files.append((os.path.join(share, 'launch'), launch_files))
    files.extend(_tree_data_files('config', share))
    return files


setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    description='CLIP-RT vision-language-action policy: ROS-free core library and ROS 2 nodes',
    license='Apache-2.0',
    maintainer='cliprt maintainers',
    maintainer_email='cliprt-maintainers@example.com',
    python_requires='>=3.10',
    packages=find_packages(include=['cliprt_core', 'cliprt_core.*',
                                    'cliprt_ros', 'cliprt_ros.*']),
    # Data the library itself reads (not user-facing config): found next to the code, so it
    # resolves from a source checkout, a pip install and a colcon install alike.
    package_data={'cliprt_core': ['actions/vocabularies/*.json', 'model/configs/*.yaml']},
    data_files=_data_files(),
    install_requires=['numpy', 'pyyaml'],
    extras_require={
        # Never installed by default: TensorRT wheels download from NVIDIA and need a GPU.
        'tensorrt': ['tensorrt>=10,<12'],
        'gpu': ['tensorrt>=10,<12'],
        # cliprt-eval --executor ray (lazy import; +~250 MB, so not a default dependency).
        'ray': ['ray==2.60.0'],
    },
    zip_safe=True,
    entry_points={
        'console_scripts': [
            'cliprt-bench = cliprt_core.cli.bench:main',
            'cliprt-demo = cliprt_core.cli.demo:main',
            'cliprt-train = cliprt_core.cli.train:main',
            'cliprt-data = cliprt_core.cli.data:main',
            'cliprt-eval = cliprt_core.cli.eval:main',
            'cliprt-export = cliprt_core.cli.export:main',
            # ROS 2 nodes: installed to lib/cliprt_ros/ (see setup.cfg) for `ros2 run`.
            'policy_node = cliprt_ros.policy_node:main',
            'libero_bridge_node = cliprt_ros.libero_bridge_node:main',
            'action_executor = cliprt_ros.executor_node:main',
            'teleop_node = cliprt_ros.teleop_node:main',
            'recorder_node = cliprt_ros.recorder_node:main',
        ],
    },
)
