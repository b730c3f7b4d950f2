"""Data: labelled dataset formats (folder, HDF5), torch datasets, and the synthetic defocus renderer."""
