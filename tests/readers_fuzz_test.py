"""Fuzz / property tests: corrupted input to every reader gives a clear, typed error.

Never a silent wrong array, never a hang: truncation, garbage bytes, NaN, wrong joint / body /
frame counts, empty files, invalid JSON, wrong JSON types, forbidden pickle globals. Inputs are
small synthetic files in each real format (built here, so the test needs no ../shared), plus the
real samples when ../shared is present. Where a corruption can leave the file valid (garbage in
a place the format does not check), the property is "typed error, or exactly the original
output".
"""

import json
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amstgcn_jax.readers import arrays, jhmdb, kard, kinetics, ntu, nwucla, safe_pickle
from amstgcn_jax.readers.errors import SkeletonFormatError, UnsafePickleError

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
# Characters that can never be part of a number, a count or JSON syntax outside a string.
GARBAGE = st.binary(min_size=1, max_size=4).map(
    lambda b: bytes(c for c in b
                    if chr(c) not in "0123456789.+-_eEnNaAiIfFtTyYlLsSuUrR \t\r\n,:[]{}\"'")
).filter(lambda b: len(b) > 0)


# ---------------------------------------------------------------------------- synthetic files
def make_ntu_text(rng, bodies_per_frame, num_joint=25, newline="\r\n"):
    lines = [str(len(bodies_per_frame))]
    for n in bodies_per_frame:
        lines.append(str(n))
        for b in range(n):
            lines.append(f"7205759403794{b:04d} 0 1 1 1 1 0 0.01 -0.25 2")
            lines.append(str(num_joint))
            for _ in range(num_joint):
                x, y, z = rng.uniform(-1, 4, 3)
                lines.append(f"{x:.7g} {y:.7g} {z:.7g} 336.5 192.8 1184.5 489.4 -0.22 0.03 0.97 "
                             "-0.10 2")
    return (newline.join(lines) + newline).encode()


def make_kinetics_obj(rng, num_frames=6, max_people=3):
    data = []
    for t in range(num_frames):
        people = []
        for _ in range(int(rng.integers(0, max_people + 1))):
            pose = [round(float(v), 3) for v in rng.uniform(0, 1, 36)]
            score = [round(float(v), 3) for v in rng.uniform(0, 1, 18)]
            people.append({"pose": pose, "score": score})
        data.append({"frame_index": t + 1, "skeleton": people})
    data[0]["skeleton"].append({"pose": [0.5] * 36, "score": [0.9] * 18})  # never empty
    return {"data": data, "label": "abseiling", "label_index": 0}


def make_nwucla_obj(rng, num_frames=5):
    sk = [[[round(float(v), 5) for v in rng.uniform(-1, 3, 3)] for _ in range(20)]
          for _ in range(num_frames)]
    return {"file_name": "a01_s01_e00_v01", "skeletons": sk, "label": 1}


def make_kard_text(rng, num_frames=4):
    return "".join(f"{x:.5f} {y:.5f} {z:.5f}\n"
                   for x, y, z in rng.uniform(-500, 3000, (num_frames * 15, 3))).encode()


def outcome(fn, *args, **kwargs):
    """Returns ("ok", result) or ("error", exc) for typed errors; anything else propagates."""
    try:
        return "ok", fn(*args, **kwargs)
    except SkeletonFormatError as e:
        assert str(e), "error without a message"
        return "error", e


def same(a, b):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape \
            and a.tobytes() == b.tobytes()
    return a == b


def assert_error(fn, path, *args, **kwargs):
    kind, res = outcome(fn, path, *args, **kwargs)
    assert kind == "error", f"no error for corrupted {path}: got {type(res)}"
    assert str(path) in str(res), f"message does not name the file: {res}"


def truncation_point(data: bytes):
    end = len(data.rstrip())
    return st.integers(min_value=0, max_value=end - 1)


# --------------------------------------------------------------------------------- NTU text
@pytest.fixture(scope="module")
def ntu_base(tmp_path_factory):
    rng = np.random.default_rng(0)
    raw = make_ntu_text(rng, [1, 2, 0, 3, 1])
    path = tmp_path_factory.mktemp("ntu") / "S001C002P003R001A004.skeleton"
    path.write_bytes(raw)
    return raw, ntu.read_ntu_skeleton(path)


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@SETTINGS
@given(data=st.data())
def test_ntu_truncated(tmp_path, ntu_base, data):
    raw, _ = ntu_base
    cut = data.draw(truncation_point(raw))
    assert_error(ntu.read_ntu_skeleton,
                 _write(tmp_path, "S001C002P003R001A004.skeleton", raw[:cut]))


@SETTINGS
@given(data=st.data())
def test_ntu_garbage(tmp_path, ntu_base, data):
    raw, want = ntu_base
    pos = data.draw(st.integers(0, len(raw)))
    junk = data.draw(GARBAGE)
    replace = data.draw(st.integers(0, 3))
    bad = raw[:pos] + junk + raw[pos + replace:]
    kind, res = outcome(ntu.read_ntu_skeleton,
                        _write(tmp_path, "S001C002P003R001A004.skeleton", bad))
    assert kind == "error" or same(res, want)


def _ntu_lines(raw):
    return raw.decode().split("\r\n")


def _ntu_line_kinds(lines):
    """Indices of the count and coordinate lines: (frames, bodies, joints, xyz)."""
    frames_i, bodies_i, joints_i, xyz_i = [0], [], [], []
    i = 1
    for _ in range(int(lines[0])):
        bodies_i.append(i)
        n = int(lines[i])
        i += 1
        for _ in range(n):
            joints_i.append(i + 1)
            xyz_i.extend(range(i + 2, i + 27))
            i += 27
    return frames_i, bodies_i, joints_i, xyz_i


@SETTINGS
@given(data=st.data())
def test_ntu_wrong_counts_and_nan(tmp_path, ntu_base, data):
    raw, _ = ntu_base
    lines = _ntu_lines(raw)
    frames_i, bodies_i, joints_i, xyz_i = _ntu_line_kinds(lines)
    what = data.draw(st.sampled_from(["frames", "bodies", "joints", "nan"]))
    if what == "nan":
        i = data.draw(st.sampled_from(xyz_i))
        fields = lines[i].split()
        fields[data.draw(st.integers(0, 2))] = data.draw(st.sampled_from(["nan", "NaN", "inf",
                                                                          "-inf", "nan(0x1)"]))
        lines[i] = " ".join(fields)
    else:
        i = data.draw(st.sampled_from({"frames": frames_i, "bodies": bodies_i,
                                       "joints": joints_i}[what]))
        old = int(lines[i])
        lines[i] = str(data.draw(st.integers(-2, 60).filter(lambda v: v != old)))
    assert_error(ntu.read_ntu_skeleton,
                 _write(tmp_path, "S001C002P003R001A004.skeleton", "\r\n".join(lines).encode()))


@pytest.mark.parametrize("content", [b"", b"\r\n \n", b"\x00" * 64, b"\xff\xfe garbage",
                                     b"3\r\n0\r\n0\r\n", b"1\r\n1\r\n"])
def test_ntu_empty_and_degenerate(tmp_path, content):
    assert_error(ntu.read_ntu_skeleton, _write(tmp_path, "S001C002P003R001A004.skeleton", content))


def test_ntu_huge_counts_do_not_hang(tmp_path):
    for content in (b"999999999999\r\n1\r\n", b"2\r\n99999999\r\n", b"1" + b"0" * 5000 + b"\r\n"):
        assert_error(ntu.read_ntu_skeleton, _write(tmp_path, "S001C002P003R001A004.skeleton",
                                                   content))


# ------------------------------------------------------------------------------ NTU txt2npy
def _npy_with_pickle(payload_obj, protocol=3):
    header = {"descr": "|O", "fortran_order": False, "shape": ()}
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + pickle.dumps(payload_obj, protocol=protocol)


@SETTINGS
@given(data=st.data())
def test_ntu_npy_truncated(tmp_path, data):
    rng = np.random.default_rng(1)
    skel = rng.uniform(-1, 3, (7, 25, 3))
    raw = _npy_with_pickle(np.array({"file_name": "S001C001P001R001A001", "nbodys": [1] * 7,
                                     "njoints": 25, "skel_body0": skel}))
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert_error(ntu.read_ntu_npy, _write(tmp_path, "S001C001P001R001A001.skeleton.npy", raw[:cut]))


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_ntu_npy_forbidden_global(tmp_path):
    raw = _npy_with_pickle(np.array({"skel_body0": _Evil()}, dtype=object))
    p = _write(tmp_path, "S001C001P001R001A001.skeleton.npy", raw)
    with pytest.raises(UnsafePickleError, match="system"):
        ntu.read_ntu_npy(p)


# --------------------------------------------------------------------------------- JSON formats
def _outside_strings(text: bytes):
    """Positions of `text` that are not inside a JSON string literal."""
    inside, esc, out = False, False, []
    for i, c in enumerate(text):
        if inside:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                inside = False
            continue
        if c == 0x22:
            inside = True
        else:
            out.append(i)
    out.append(len(text))
    return out


JSON_READERS = {
    "kinetics": (lambda rng: make_kinetics_obj(rng), "abcdefghijk.json",
                 kinetics.read_kinetics_json),
    "nwucla": (lambda rng: make_nwucla_obj(rng), "a01_s01_e00_v01.json", nwucla.read_nwucla_json),
}


@pytest.mark.parametrize("fmt", sorted(JSON_READERS))
@SETTINGS
@given(data=st.data())
def test_json_truncated_and_garbage(tmp_path, fmt, data):
    make, name, read = JSON_READERS[fmt]
    raw = json.dumps(make(np.random.default_rng(2))).encode()
    want = read(_write(tmp_path, name, raw))
    if data.draw(st.booleans()):
        bad = raw[:data.draw(truncation_point(raw))]
        assert_error(read, _write(tmp_path, name, bad))
    else:
        pos = data.draw(st.sampled_from(_outside_strings(raw)))
        bad = raw[:pos] + data.draw(GARBAGE) + raw[pos:]
        kind, res = outcome(read, _write(tmp_path, name, bad))
        assert kind == "error" or same(res, want)


BAD_VALUES = [None, "0.5", True, [], {}, [0.5], float("nan"), float("inf")]


def _kinetics_mutations(obj, draw):
    frame = draw(st.integers(0, len(obj["data"]) - 1))
    people = obj["data"][frame]["skeleton"]
    target = draw(st.sampled_from(["value", "length", "frame_index", "skeleton", "data", "label",
                                   "drop_key"] if people else ["frame_index", "data", "label"]))
    if target == "value":
        person = people[draw(st.integers(0, len(people) - 1))]
        key = draw(st.sampled_from(["pose", "score"]))
        person[key][draw(st.integers(0, len(person[key]) - 1))] = draw(st.sampled_from(BAD_VALUES))
    elif target == "length":
        person = people[draw(st.integers(0, len(people) - 1))]
        key = draw(st.sampled_from(["pose", "score"]))
        person[key] = person[key][:-draw(st.integers(1, 3))] if draw(st.booleans()) \
            else person[key] + [0.5]
    elif target == "frame_index":
        obj["data"][frame]["frame_index"] = draw(st.sampled_from([None, "1", 1.5, -1, 300, 10**6,
                                                                  True]))
    elif target == "skeleton":
        obj["data"][frame]["skeleton"] = draw(st.sampled_from([None, {}, "x", [1], [[0.5]]]))
    elif target == "data":
        obj["data"] = draw(st.sampled_from([None, {}, "x", [1], [[]]]))
    elif target == "label":
        obj["label_index"] = draw(st.sampled_from([None, "3", 1.0, True]))
    else:
        person = people[draw(st.integers(0, len(people) - 1))]
        del person[draw(st.sampled_from(["pose", "score"]))]
    return obj


def _nwucla_mutations(obj, draw):
    sk = obj["skeletons"]
    t = draw(st.integers(0, len(sk) - 1))
    target = draw(st.sampled_from(["value", "joints", "coords", "frame", "skeletons", "label",
                                   "name"]))
    if target == "value":
        sk[t][draw(st.integers(0, 19))][draw(st.integers(0, 2))] = draw(st.sampled_from(BAD_VALUES))
    elif target == "joints":
        sk[t] = sk[t][:-1] if draw(st.booleans()) else sk[t] + [[0.1, 0.2, 0.3]]
    elif target == "coords":
        j = draw(st.integers(0, 19))
        sk[t][j] = sk[t][j][:2] if draw(st.booleans()) else sk[t][j] + [0.0]
    elif target == "frame":
        sk[t] = draw(st.sampled_from([None, "x", [], {}, 1.0]))
    elif target == "skeletons":
        obj["skeletons"] = draw(st.sampled_from([None, "x", 3, {}, [[]], [[[]]]]))
    elif target == "label":
        obj["label"] = draw(st.sampled_from([None, "1", 2, 0, 11, True, 1.0]))
    else:
        obj["file_name"] = draw(st.sampled_from(["a02_s01_e00_v01", 5, None]))
    return obj


@pytest.mark.parametrize("fmt,mutate", [("kinetics", _kinetics_mutations),
                                        ("nwucla", _nwucla_mutations)])
@SETTINGS
@given(data=st.data())
def test_json_wrong_types_and_values(tmp_path, fmt, mutate, data):
    make, name, read = JSON_READERS[fmt]
    obj = mutate(make(np.random.default_rng(data.draw(st.integers(0, 3)))), data.draw)
    raw = json.dumps(obj).encode()  # NaN/inf become the NaN/Infinity tokens Python accepts
    assert_error(read, _write(tmp_path, name, raw))


@pytest.mark.parametrize("content", [b"", b"   ", b"null", b"[]", b"{}", b"3", b'"x"',
                                     b"\xff\xfe{}", b'{"data": []}'])
@pytest.mark.parametrize("fmt", sorted(JSON_READERS))
def test_json_empty_and_wrong_top_level(tmp_path, fmt, content):
    _, name, read = JSON_READERS[fmt]
    assert_error(read, _write(tmp_path, name, content))


def test_kinetics_no_skeleton_is_empty_error(tmp_path):
    from amstgcn_jax.readers.errors import EmptySkeletonError
    raw = json.dumps({"data": [{"frame_index": 1, "skeleton": []}], "label": "x",
                      "label_index": 0}).encode()
    with pytest.raises(EmptySkeletonError):
        kinetics.read_kinetics_json(_write(tmp_path, "x.json", raw))


@SETTINGS
@given(data=st.data())
def test_kinetics_label_json_corrupt(tmp_path, data):
    obj = {"vid1": {"has_skeleton": True, "label": "a", "label_index": 0},
           "vid2": {"has_skeleton": False, "label": "b", "label_index": 1}}
    raw = json.dumps(obj).encode()
    if data.draw(st.booleans()):
        bad = raw[:data.draw(truncation_point(raw))]
    else:
        entry = obj[data.draw(st.sampled_from(["vid1", "vid2"]))]
        key = data.draw(st.sampled_from(["has_skeleton", "label", "label_index"]))
        entry[key] = data.draw(st.sampled_from({"has_skeleton": [None, "1", 1.5, [], 0],
                                                "label": [None, 1, 1.5, [], {}],
                                                "label_index": [None, "1", 1.5, [], True]}[key]))
        bad = json.dumps(obj).encode()
    assert_error(kinetics.read_kinetics_labels, _write(tmp_path, "labels.json", bad))


# ------------------------------------------------------------------------------ array formats
@SETTINGS
@given(data=st.data())
def test_npy_sample_corrupt(tmp_path, data):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 8, 25, 2)).astype(np.float32)
    p = tmp_path / "s.npy"
    np.save(p, x)
    raw = p.read_bytes()
    what = data.draw(st.sampled_from(["truncate", "header", "nan", "ndim", "object", "zeros"]))
    if what == "truncate":
        p.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif what == "header":  # the data section has no redundancy; the header does
        pos = data.draw(st.integers(0, 127))
        p.write_bytes(raw[:pos] + data.draw(GARBAGE) + raw[pos + 1:])
    elif what == "nan":
        y = x.copy()
        y.flat[data.draw(st.integers(0, x.size - 1))] = data.draw(st.sampled_from(
            [np.nan, np.inf, -np.inf]))
        np.save(p, y)
    elif what == "ndim":
        np.save(p, x.reshape(data.draw(st.sampled_from([(3, 8, 50), (3, 8, 25, 2, 1), (-1,)]))))
    elif what == "object":
        np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        np.save(p, np.zeros_like(x))
    kind, res = outcome(arrays.read_array_npy, p)
    assert kind == "error" or same(res, x)
    if what != "header":
        assert kind == "error"


@SETTINGS
@given(data=st.data())
def test_stgcn_arrays_corrupt(tmp_path, data):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 3, 6, 25, 2)).astype(np.float32)
    np.save(tmp_path / "d.npy", x)
    names, labels = ["a.skeleton", "b.skeleton", "c.skeleton"], [0, 5, 59]
    what = data.draw(st.sampled_from(["truncate_pkl", "truncate_npy", "evil", "len", "type",
                                      "label", "shape"]))
    pkl = pickle.dumps((names, labels))
    if what == "truncate_pkl":
        pkl = pkl[:data.draw(st.integers(0, len(pkl) - 1))]
    elif what == "truncate_npy":
        raw = (tmp_path / "d.npy").read_bytes()
        (tmp_path / "d.npy").write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif what == "evil":
        pkl = pickle.dumps((names, _Evil()))
    elif what == "len":
        pkl = pickle.dumps((names[:2], labels[:2]))
    elif what == "type":
        pkl = pickle.dumps(data.draw(st.sampled_from([{"a": 1}, (names,), names, 3])))
    elif what == "label":
        bad = list(labels)
        bad[1] = data.draw(st.sampled_from(["5", 5.0, None, -1, True]))
        pkl = pickle.dumps((names, bad))
    else:
        np.save(tmp_path / "d.npy", x[0])
    (tmp_path / "l.pkl").write_bytes(pkl)
    kind, res = outcome(arrays.read_stgcn_arrays, tmp_path / "d.npy", tmp_path / "l.pkl",
                        mmap=data.draw(st.booleans()))
    assert kind == "error", what


def _pyskl_ann(rng):
    return {"frame_dir": "v_x", "label": 3, "total_frames": 9, "img_shape": (256, 340),
            "keypoint": rng.uniform(0, 300, (2, 9, 17, 2)).astype(np.float16),
            "keypoint_score": rng.uniform(0, 1, (2, 9, 17)).astype(np.float16)}


@SETTINGS
@given(data=st.data())
def test_pyskl_corrupt(tmp_path, data):
    rng = np.random.default_rng(5)
    ann = _pyskl_ann(rng)
    what = data.draw(st.sampled_from(["keypoint", "score", "label", "frames", "nan", "evil",
                                      "truncate", "top"]))
    if what == "keypoint":
        ann["keypoint"] = data.draw(st.sampled_from([None, "x", ann["keypoint"][0],
                                                     ann["keypoint"].astype(np.int32)]))
    elif what == "score":
        ann["keypoint_score"] = data.draw(st.sampled_from(["x", ann["keypoint_score"][:, :5],
                                                           ann["keypoint_score"][..., None]]))
    elif what == "label":
        ann["label"] = data.draw(st.sampled_from([None, "3", 3.0, -1, True]))
    elif what == "frames":
        ann["total_frames"] = data.draw(st.sampled_from([8, 10, "9", 9.0]))
    elif what == "nan":
        ann["keypoint"][1, 2, 3, 0] = np.nan
    elif what == "evil":
        ann["img_shape"] = _Evil()
    obj = {"split": {"train": ["v_x"]}, "annotations": [ann]}
    raw = pickle.dumps(obj, protocol=data.draw(st.integers(2, 5)))
    if what == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif what == "top":
        raw = pickle.dumps(data.draw(st.sampled_from([3, "x", {"split": 1, "annotations": []},
                                                      {"annotations": [1]}, (ann,)])))
    p = _write(tmp_path, "a.pkl", raw)

    def read(path):
        _, anns = arrays.read_pyskl_pickle(path)
        return [arrays.pyskl_to_array(a, path=str(path)) for a in anns]
    assert_error(read, p)


@SETTINGS
@given(data=st.data())
def test_ctrgcn_npz_corrupt(tmp_path, data):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 5, 150)).astype(np.float32)
    y = np.eye(60, dtype=np.float32)[[3, 7]]
    what = data.draw(st.sampled_from(["truncate", "onehot", "shape", "nan", "missing"]))
    kw = {"x_train": x, "y_train": y}
    if what == "onehot":
        kw["y_train"] = y * data.draw(st.sampled_from([0.5, 2.0, 0.0]))
    elif what == "shape":
        kw["x_train"] = x[..., :149]
    elif what == "nan":
        kw["x_train"] = x.copy()
        kw["x_train"][1, 2, 3] = np.nan
    elif what == "missing":
        kw = {"x_train": x}
    p = tmp_path / "n.npz"
    np.savez(p, **kw)
    if what == "truncate":
        raw = p.read_bytes()
        p.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    assert_error(arrays.read_ctrgcn_npz, p, "train")


# ---------------------------------------------------------------------------- KARD, JHMDB
@SETTINGS
@given(data=st.data())
def test_kard_corrupt(tmp_path, data):
    raw = make_kard_text(np.random.default_rng(7))
    name = "a01_s01_e01_realworld.txt"
    want = kard.read_kard_txt(_write(tmp_path, name, raw))
    lines = raw.decode().splitlines()
    what = data.draw(st.sampled_from(["drop_line", "garbage", "nan", "fields", "empty"]))
    if what == "drop_line":  # a missing line breaks the 15-lines-per-frame structure
        del lines[data.draw(st.integers(0, len(lines) - 1))]
        bad = ("\n".join(lines) + "\n").encode()
    elif what == "garbage":
        pos = data.draw(st.integers(0, len(raw)))
        bad = raw[:pos] + data.draw(GARBAGE) + raw[pos:]
    elif what == "nan":
        i = data.draw(st.integers(0, len(lines) - 1))
        f = lines[i].split()
        f[data.draw(st.integers(0, 2))] = data.draw(st.sampled_from(["nan", "inf", "-inf"]))
        lines[i] = " ".join(f)
        bad = ("\n".join(lines) + "\n").encode()
    elif what == "fields":
        i = data.draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i] + " 1.0" if data.draw(st.booleans()) else " ".join(lines[i].split()[:2])
        bad = ("\n".join(lines) + "\n").encode()
    else:
        bad = data.draw(st.sampled_from([b"", b"\n\n", b"0 0 0\n" * 15]))
    kind, res = outcome(kard.read_kard_txt, _write(tmp_path, name, bad))
    assert kind == "error" or (what == "garbage" and same(res, want)), what


@SETTINGS
@given(data=st.data())
def test_jhmdb_corrupt(tmp_path, data):
    rng = np.random.default_rng(8)
    obj = {"pose": [rng.uniform(0, 300, (t, 15, 2)) for t in (15, 20)], "label": ["clap", "run"]}
    what = data.draw(st.sampled_from(["truncate", "evil", "shape", "nan", "label", "len", "top"]))
    if what == "evil":
        obj["label"][0] = _Evil()
    elif what == "shape":
        obj["pose"][1] = obj["pose"][1][:, :14]
    elif what == "nan":
        obj["pose"][0][3, 4, 1] = np.nan
    elif what == "label":
        obj["label"][1] = data.draw(st.sampled_from(["dance", 3, None]))
    elif what == "len":
        obj["label"] = obj["label"][:1]
    elif what == "top":
        obj = data.draw(st.sampled_from([[1, 2], {"pose": 1, "label": []}, "x"]))
    raw = pickle.dumps(obj, protocol=3)
    if what == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    assert_error(jhmdb.read_jhmdb_pickle, _write(tmp_path, "GT_train_1.pkl", raw))


# ----------------------------------------------------------------------------- safe_pickle
FORBIDDEN = [(b"os", b"system"), (b"posix", b"system"), (b"builtins", b"eval"),
             (b"__builtin__", b"exec"), (b"builtins", b"getattr"), (b"subprocess", b"Popen"),
             (b"numpy", b"load"), (b"copyreg", b"_reconstructor"), (b"functools", b"partial"),
             (b"torch._utils", b"_rebuild_tensor_v2"), (b"numpy.testing", b"assert_equal")]


@pytest.mark.parametrize("module,name", FORBIDDEN)
@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL"])
def test_safe_pickle_forbidden_globals(module, name, opcode):
    if opcode == "GLOBAL":
        raw = b"c" + module + b"\n" + name + b"\n(S'x'\ntR."
    else:
        unicode = lambda s: b"\x8c" + bytes([len(s)]) + s  # noqa: E731 (SHORT_BINUNICODE)
        raw = b"\x80\x04" + unicode(module) + unicode(name) + b"\x93" + unicode(b"x") + b"\x85R."
    with pytest.raises(UnsafePickleError) as info:
        safe_pickle.loads(raw, "evil.pkl")
    assert f"{module.decode()}.{name.decode()}" in str(info.value)
    assert "evil.pkl" in str(info.value)


@SETTINGS
@given(data=st.data())
def test_safe_pickle_truncated_or_garbage(data):
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, "x", (2.5, None)]}
    raw = pickle.dumps(obj, protocol=data.draw(st.integers(0, 5)))
    if data.draw(st.booleans()):
        with pytest.raises(UnsafePickleError):
            safe_pickle.loads(raw[:data.draw(st.integers(0, len(raw) - 1))], "t.pkl")
    else:
        pos = data.draw(st.integers(0, len(raw) - 1))
        bad = raw[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + raw[pos + 1:]
        try:
            safe_pickle.loads(bad, "g.pkl")  # may decode to something harmless; never executes
        except UnsafePickleError:
            pass


def test_safe_pickle_persistent_id_refused():
    raw = b"\x80\x02X\x01\x00\x00\x00xQ."  # BINPERSID
    with pytest.raises(UnsafePickleError, match="persistent"):
        safe_pickle.loads(raw, "p.pkl")


REAL_TEXT_SAMPLES = [
    ("ntu60-raw-samples/LevelCA/S001C003P008R002A058.skeleton", ntu.read_ntu_skeleton),
    ("kinetics-skeleton-samples/kinetics_val_old/__u6odV5hrI.json", kinetics.read_kinetics_json),
    ("nw-ucla/all_sqe/a01_s01_e00_v01.json", nwucla.read_nwucla_json),
]


@pytest.mark.parametrize("rel,read", REAL_TEXT_SAMPLES, ids=[r for r, _ in REAL_TEXT_SAMPLES])
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_real_files_truncated(shared_dir, tmp_path, rel, read, data):
    raw = (shared_dir / "data" / rel).read_bytes()
    cut = data.draw(truncation_point(raw))
    name = rel.rsplit("/", 1)[1]
    assert_error(read, _write(tmp_path, name, raw[:cut]))


PICKLE_READERS = [arrays.read_stgcn_labels, arrays.read_pyskl_pickle,
                  nwucla.read_nwucla_val_labels, jhmdb.read_jhmdb_pickle, safe_pickle.load]


@pytest.mark.parametrize("read", PICKLE_READERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_pickle_reader_refuses_forbidden_globals(tmp_path, read, protocol):
    payload = {"pose": [np.zeros((2, 15, 2))], "label": ["clap"], "annotations": [],
               "x": _Evil()}
    p = _write(tmp_path, "evil.pkl", pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: .*system"):
        read(p)
