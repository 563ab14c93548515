"""Importers and exporters for the feature formats users already have.

- `openface`: OpenFace 2 per-frame CSVs → face store ``openface2``.
- `facet`: iMotions / Emotient FACET exports → face store ``facet``.
- `mmsa`: MMSA ``aligned_50`` / ``unaligned_50`` pickles ⇄ text/audio/vision stores + manifest.
- `mfn`: the Memory Fusion Network release's HDF5 (YouTube, ICT-MMMO) → audio/video stores +
  manifest.
- `imported`: what an importer read (manifest + stores), and the one writer of both.
- `csd`: CMU-MultimodalSDK computational sequences (HDF5) ⇄ stores, and a vectorised
  word-level alignment that does what the SDK's ``align`` does (needs h5py for the files only).
"""

from affectflow.formats.csd import (align_to_reference, csd_to_store, read_csd, store_to_csd,
                                    write_csd)
from affectflow.formats.facet import import_facet, read_facet_export
from affectflow.formats.mfn import import_mfn, read_mfn
from affectflow.formats.mmsa import export_mmsa, import_mmsa, read_mmsa
from affectflow.formats.openface import import_openface, read_openface_csv

__all__ = [
    "align_to_reference", "csd_to_store", "export_mmsa", "import_facet", "import_mfn",
    "import_mmsa", "import_openface", "read_csd", "read_facet_export", "read_mfn", "read_mmsa",
    "read_openface_csv", "store_to_csd", "write_csd",
]
