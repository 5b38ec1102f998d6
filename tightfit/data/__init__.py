"""Data sets as in-memory tensors, seeded splits, and fast batch loading."""

from tightfit.data.loader import BatchLoader, Normalize, augment_batch
from tightfit.data.registry import dataset_names, load_dataset
from tightfit.data.split import split_validation, stratified_split
from tightfit.data.tensors import Augment, DataBundle, TensorSet

__all__ = ["Augment", "BatchLoader", "DataBundle", "Normalize", "TensorSet", "augment_batch", "dataset_names",
           "load_dataset", "split_validation", "stratified_split"]
