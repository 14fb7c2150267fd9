"""Readers for the skeleton dataset formats users of the PyTorch skeleton toolkits hold.

Each reader is a plain function that returns numpy in the upstream layout ``(C, T, V, M)``
float32 (channels, frames, joints, persons), so that its output can be compared bit for bit with
the arrays the reference preprocessing writes. Bad input raises
`amstgcn_jax.readers.errors.SkeletonFormatError` (a ValueError naming the file and what is
wrong), its subclass `EmptySkeletonError` for a well-formed file without any skeleton, or
`UnsafePickleError` for a pickle that is corrupt or names a forbidden global — never a silently
wrong array. Import the submodules directly (no re-exports):

  ntu        read_ntu_skeleton(path, max_body=2, num_joint=25, max_frame=300 | None, truncate=False)
             -> (3, 300 | T, 25, 2);  parse_ntu_skeleton(path) -> NTUSkeletonFile;
             read_ntu_npy(path) (authors' txt2npy dict);  parse_ntu_name(name) -> NTUName
             (.setup .camera .subject .replication .action .label);  ntu_split(name, benchmark,
             dataset) -> "train" | "val";  missing_skeleton_samples(dataset);
             list_ntu_samples(dir, benchmark, split, dataset) -> [(name, path, label)]
  kinetics   read_kinetics_json(path) -> ((3, 300, 18, 2), label_index);
             read_kinetics_labels(path) -> {video_id: KineticsLabel};
             read_kinetics_label_names(path);  list_kinetics_samples(dir, label_path)
  arrays     read_array_npy(path) -> (C, T, V, M);  read_stgcn_arrays(data.npy, label.pkl)
             -> StgcnArrays(.data memmap (N, C, T, V, M), .names, .labels, .sample(i));
             read_ctrgcn_npz(path, part) -> ((N, C, T, V, M), labels);
             read_pyskl_pickle(path) -> (split, annotations);  select_pyskl_split(...);
             pyskl_to_array(annotation) -> ((C[+1], T, V, M), label)
  nwucla     read_nwucla_json(path) -> ((3, T, 20, 1), label);  list_nwucla_files(root, split)
             -> [(name, path, label)];  read_nwucla_dir(root, split) -> [(name, data, label)];
             parse_nwucla_name(name) (.split is the cross-view split);  read_nwucla_val_labels
  kard       read_kard_txt(path) -> ((3, T, 15, 1), label);  list_kard_files(root, ...)
  jhmdb      read_jhmdb_pickle(path) -> [((2, T, 15, 1), label)];  JHMDB_CLASSES
  safe_pickle  load(path) / loads(bytes, name): numpy arrays and plain containers only
  errors     SkeletonFormatError, EmptySkeletonError, UnsafePickleError

Splits are named "train" / "val" (ST-GCN's file names). Labels are 0-based ints.
"""
