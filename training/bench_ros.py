#!/usr/bin/env python3
"""ROS round-trip overhead benchmark (thin wrapper of ``python -m cliprt_ros.bench``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliprt_ros.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
