"""
Demonstration data.

Demonstration data: LIBERO HDF5 files (both layouts), the training Dataset, loaders, and
synthetic LIBERO-layout files for tests and benchmarks (:mod:`cliprt_core.data.synthetic`).
"""
from cliprt_core.data.build import build_datasets, scan_files
from cliprt_core.data.config import DataConfig
from cliprt_core.data.dataset import CHUNK_PAD_VALUE, DemoDataset
from cliprt_core.data.libero_hdf5 import (DataError, find_hdf5_files, instruction_from_filename,
                                          LiberoFile, read_file_info)
from cliprt_core.data.loader import EpochBatchSampler, make_loader, ShardedEvalSampler, split_demos
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5, WrittenFile

__all__ = [
    'CHUNK_PAD_VALUE', 'DataConfig', 'DataError', 'DemoDataset', 'EpochBatchSampler', 'LiberoFile',
    'ShardedEvalSampler', 'WrittenFile', 'build_datasets', 'find_hdf5_files',
    'instruction_from_filename', 'libero_file_name', 'make_loader', 'read_file_info', 'scan_files',
    'split_demos', 'write_libero_hdf5',
]
