"""Readers for the skeleton dataset formats users of the PyTorch skeleton toolkits hold.

Each reader is a plain function that returns numpy in the upstream layout ``(C, T, V, M)``
float32 (channels, frames, joints, persons), so that its output can be compared bit for bit with
the arrays the reference preprocessing writes. Bad input raises
`amstgcn_jax.readers.errors.SkeletonFormatError` (or its subclasses `EmptySkeletonError`,
`UnsafePickleError`), never a silently wrong array.

Modules:
  ntu       NTU RGB+D 60/120 ``.skeleton`` text files, name parsing, xsub/xview/xset splits,
            the official list of samples with missing skeletons; the authors' txt2npy ``.npy``.
  kinetics  Kinetics-skeleton JSON (ST-GCN release) and its label JSON.
  arrays    ST-GCN ``*_data.npy`` + ``*_label.pkl``, single ``(C, T, V, M)`` ``.npy`` arrays,
            pyskl / mmaction2 annotation pickles.
  nwucla    NW-UCLA, CTR-GCN ``all_sqe`` JSON release (cross-view split).
  kard      KARD real-world text files.
  jhmdb     JHMDB 2D ground-truth joints (DD-Net pickles).
  safe_pickle  restricted unpickler (numpy arrays and plain containers only).
"""
