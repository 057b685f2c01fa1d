"""Build the training and validation datasets described by a :class:`DataConfig`."""
from __future__ import annotations

from cliprt_core.actions import LabelingConfig, Vocabulary
from cliprt_core.data.config import DataConfig
from cliprt_core.data.dataset import DemoDataset
from cliprt_core.data.libero_hdf5 import DataError, find_hdf5_files, LiberoFile, read_file_info
from cliprt_core.data.loader import split_demos


def scan_files(config: DataConfig) -> list[LiberoFile]:
    """Find and validate every file of ``config.paths`` (DataError on the first bad one)."""
    return [read_file_info(path, config.camera, config.wrist)
            for path in find_hdf5_files(config.paths)]


def build_datasets(config: DataConfig, *, image_size: int, head: str, chunk_size: int = 8,
                   vocabulary: Vocabulary | None = None, seed: int = 0,
                   files: list[LiberoFile] | None = None
                   ) -> tuple[DemoDataset, DemoDataset | None]:
    """(train, val) datasets sharing one instruction table; val is None if ``val_fraction`` = 0."""
    files = scan_files(config) if files is None else files
    train_demos, val_demos = split_demos(files, config.val_fraction, config.split_seed,
                                         config.max_demos_per_file)
    if not train_demos:
        raise DataError('no training demos after the split')
    labeling = LabelingConfig.libero() if config.action_units == 'libero' else LabelingConfig()
    common = {'image_size': config.image_size or image_size, 'head': head,
              'chunk_size': chunk_size, 'camera': config.camera, 'wrist': config.wrist,
              'crop_scale': config.crop_scale, 'seed': seed, 'skip_noops': config.skip_noops,
              'vocabulary': vocabulary, 'labeling': labeling, 'cache_mb': config.cache_mb}
    train = DemoDataset(files, augment=config.augment, demos=train_demos, **common)
    val = DemoDataset(files, augment=False, demos=val_demos, **common) if val_demos else None
    return train, val
