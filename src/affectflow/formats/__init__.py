"""Importers and exporters for the feature formats users already have.

- `openface`: OpenFace 2 per-frame CSVs → face store ``openface2``.
- `facet`: iMotions / Emotient FACET exports → face store ``facet``.
- `mmsa`: MMSA ``aligned_50`` / ``unaligned_50`` pickles ⇄ text/audio/vision stores + manifest.
- `csd`: CMU-MultimodalSDK computational sequences (HDF5) ⇄ stores, and a vectorised
  word-level alignment that does what the SDK's ``align`` does (needs h5py for the files only).
"""

from affectflow.formats.csd import (align_to_reference, csd_to_store, read_csd, store_to_csd,
                                    write_csd)
from affectflow.formats.facet import import_facet, read_facet_export
from affectflow.formats.mmsa import export_mmsa, import_mmsa
from affectflow.formats.openface import import_openface, read_openface_csv

__all__ = [
    "align_to_reference", "csd_to_store", "export_mmsa", "import_facet", "import_mmsa",
    "import_openface", "read_csd", "read_facet_export", "read_openface_csv", "store_to_csd",
    "write_csd",
]
