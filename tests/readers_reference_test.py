"""Bit-for-bit check of the readers against the official preprocessing outputs.

Walks ``index.json`` of the directory named by env ``AMSTGCN_PREPROC_DIR`` (default
``../shared/data/reference-preprocessing``), resolves each entry's ``source`` against env
``AMSTGCN_DATA_ROOT`` (default ``../shared/data``), reads the source with the matching reader
(chosen by file type and content, never by name) and compares ``data``, ``label``, the split
fields and the other per-file facts the index / npz hold. When ``AMSTGCN_PREPROC_DIR`` is set
and names a directory without entries, the test FAILS; only an absent ../shared skips.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from amstgcn_jax.readers import kinetics, ntu, nwucla
from amstgcn_jax.readers.errors import EmptySkeletonError

_SHARED = Path(os.environ.get("AMSTGCN_SHARED_DIR",
                              Path(__file__).resolve().parents[1].parent / "shared"))
_ENV_PREPROC = os.environ.get("AMSTGCN_PREPROC_DIR")
PREPROC_DIR = Path(_ENV_PREPROC) if _ENV_PREPROC else _SHARED / "data" / "reference-preprocessing"
DATA_ROOT = Path(os.environ.get("AMSTGCN_DATA_ROOT", _SHARED / "data"))
_SPLIT_KEYS = ("xsub", "xview", "xset")


def _load_entries():
    """[(group, name, entry)] from index.json; [] when it is absent or empty."""
    index = PREPROC_DIR / "index.json"
    if not index.is_file():
        return []
    raw = json.loads(index.read_text())
    out = []
    for group, items in raw.items():
        if isinstance(items, dict):
            out.extend((group, name, e) for name, e in items.items()
                       if isinstance(e, dict) and "source" in e)
    return sorted(out, key=lambda x: (x[0], x[1]))


ENTRIES = _load_entries()


def test_reference_index_has_entries():
    if not ENTRIES and _ENV_PREPROC is None and not PREPROC_DIR.exists():
        pytest.skip(f"../shared is absent ({PREPROC_DIR}): no reference outputs to compare")
    assert ENTRIES, (f"no entries with a 'source' in {PREPROC_DIR / 'index.json'} "
                     "(AMSTGCN_PREPROC_DIR must name a reference-preprocessing directory)")


def _assert_same_array(got, want, what):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.tobytes() != want.tobytes():
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        raise AssertionError(f"{what}: not bit-identical ({int((got != want).sum())} elements "
                             f"differ, max abs diff {diff.max():.3g})")


def _read_or_empty(reader, want_data, *args, **kwargs):
    """Runs the reader; an all-zero reference row (upstream's output for a file without any
    skeleton) may instead be answered with EmptySkeletonError, and then None is returned."""
    try:
        return reader(*args, **kwargs)
    except EmptySkeletonError:
        if want_data is None or want_data.any():
            raise
        return None


def _sniff(path: Path) -> str:
    if path.name.endswith(".skeleton"):
        return "ntu"
    if path.name.endswith(".skeleton.npy"):
        return "ntu_npy"
    if path.suffix == ".json":
        obj = json.loads(path.read_bytes())
        if isinstance(obj, dict) and "skeletons" in obj:
            return "nwucla"
        return "kinetics"
    raise AssertionError(f"no reader for reference source {path}")


def _ntu_dataset(group, info):
    return "ntu120" if "120" in group or info.setup > 17 or info.action > 60 else "ntu60"


@pytest.mark.parametrize("group,name,entry", ENTRIES,
                         ids=[f"{g}/{n}" for g, n, _ in ENTRIES])
def test_reader_matches_reference(group, name, entry):
    source = DATA_ROOT / entry["source"]
    assert source.is_file(), f"source {entry['source']} not found under {DATA_ROOT}"
    if "source_sha256" in entry:
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        assert sha == entry["source_sha256"], f"{source} is not the file the reference used"
    ref = {}
    if "npz" in entry:
        with np.load(PREPROC_DIR / entry["npz"], allow_pickle=False) as z:
            ref = {k: z[k] for k in z.files}
    want_data = ref.get("data")
    want_label = entry.get("label", ref.get("label"))
    kind = _sniff(source)

    if kind in ("ntu", "ntu_npy"):
        info = ntu.parse_ntu_name(source)
        dataset = _ntu_dataset(group, info)
        if want_data is not None:
            frames = want_data.shape[1]
            reader = ntu.read_ntu_skeleton if kind == "ntu" else ntu.read_ntu_npy
            got = _read_or_empty(reader, want_data, source, max_frame=frames,
                                 max_body=want_data.shape[3])
            if got is not None:
                _assert_same_array(got, want_data, f"{name} data")
        if want_label is not None:
            assert info.label == int(want_label)
        for key, field in (("action_class", "action"), ("subject_id", "subject"),
                           ("camera_id", "camera"), ("setup_id", "setup"),
                           ("replication_id", "replication")):
            for src in (entry, ref):
                if key in src:
                    assert getattr(info, field) == int(src[key]), key
        for bench in _SPLIT_KEYS:
            for want in (entry.get(bench), ref.get(f"{bench}_part")):
                if want is not None:
                    assert ntu.ntu_split(info, bench, dataset) == str(want), bench
        for want in (entry.get("in_ignored_list"), ref.get("in_ignored_list")):
            if want is not None:
                assert (info.name in ntu.missing_skeleton_samples(dataset)) == bool(want)
        if kind == "ntu":
            parsed = ntu.parse_ntu_skeleton(source)
            for want in (entry.get("num_frames"), ref.get("num_frames")):
                if want is not None:
                    assert parsed.num_frames == int(want)
            if "bodies_per_frame" in ref:
                np.testing.assert_array_equal(parsed.bodies_per_frame, ref["bodies_per_frame"])
            if "max_bodies_in_a_frame" in entry:
                assert parsed.bodies_per_frame.max() == entry["max_bodies_in_a_frame"]

    elif kind == "kinetics":
        has_skeleton = ref.get("has_skeleton", entry.get("has_skeleton", True))
        if not bool(has_skeleton):
            with pytest.raises(EmptySkeletonError):
                kinetics.read_kinetics_json(source)
            return
        shape = want_data.shape if want_data is not None else (3, 300, 18, 2)
        out = _read_or_empty(kinetics.read_kinetics_json, want_data, source, max_frame=shape[1],
                             num_joint=shape[2], num_person_out=shape[3])
        if out is None:
            return
        got, label = out
        if want_data is not None:
            _assert_same_array(got, want_data, f"{name} data")
        if "data_feeder_float64" in ref:  # the feeder item before the float32 cast
            got64, _ = kinetics.read_kinetics_json(source, max_frame=shape[1], num_joint=shape[2],
                                                   num_person_out=shape[3], dtype=np.float64)
            _assert_same_array(got64, ref["data_feeder_float64"], f"{name} float64 item")
        if want_label is not None:
            assert label == int(want_label)

    elif kind == "nwucla":
        got, label = nwucla.read_nwucla_json(source)
        if want_data is not None:
            _assert_same_array(got, want_data, f"{name} data")
        if want_label is not None:
            assert label == int(want_label)
        for bench in ("split", "xview"):
            if bench in entry:
                assert nwucla.parse_nwucla_name(source).split == entry[bench]
