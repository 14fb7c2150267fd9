"""The built-in procedural skeleton dataset: 12 human actions on the NTU RGB+D 25-joint skeleton.

No download, deterministic from a seed. Each sample is a short clip of one action class drawn
with a crude forward-kinematics body (pelvis → spine → neck → head, two arms, two legs) whose
joint angles follow an action-specific trajectory. Per sample we vary: body size and segment
proportions (subject), handedness, speed (length and number of cycles), amplitude, phase, idle
lead-in/out, idle sway, the camera view (yaw ±60°, pitch, distance, offset), sensor noise, and
the number of persons (a bystander appears in ~25% of single-person clips; `handshake` is a
two-person interaction; persons are sometimes swapped between slots).

Examples have the readers' format (upstream layout, see `amstgcn_jax.readers`):
`{"data": float32[3, T, 25, 2] (x, y, z in metres, camera space, y up), "label": int,
"name": str, "length": int}` with T == length (variable, `min_frames..max_frames`).

Generation is vectorised over a chunk of samples (`_CHUNK`); chunk k of a split draws from
`np.random.default_rng([seed, split_id, k])`, so sample i is the same whatever `num_samples` is.
It is not a reimplementation of any reference; it exists so tests, benchmarks and the README
quick-start run on a CPU in minutes without any licensed data.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = (
    "wave", "clap", "squat", "jump", "kick", "punch", "bow", "raise_both_arms",
    "turn_around", "walk_in_place", "hand_to_head", "handshake",
)
NUM_CLASSES = len(CLASS_NAMES)
NUM_JOINTS = 25
NUM_PERSONS = 2
SPLITS = {"train": 0, "test": 1}
_CHUNK = 64

# Cycles of the action over one clip, per class (low, high).
_CYCLES = {
    0: (3, 6), 1: (4, 8), 2: (1, 3), 3: (2, 4), 4: (1, 3), 5: (2, 5), 6: (1, 2), 7: (1, 2),
    8: (1, 1), 9: (2, 5), 10: (1, 3), 11: (2, 5),
}


def _rot_x(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1),
                     np.stack([z, s, c], -1)], -2)


def _rot_y(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1),
                     np.stack([-s, z, c], -1)], -2)


def _rot_z(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1),
                     np.stack([z, z, o], -1)], -2)


def _limb_dir(flex, abd, side, horiz=0.0):
    """Unit direction of a limb segment in the body frame (x: body's left, y: up, z: forward).

    Starts pointing down, is raised forward by `flex`, sideways (away from the body) by `abd`
    and swung towards the midline by `horiz`; `side` is +1 (left) or −1 (right).
    """
    d = np.stack([side * np.sin(abd) * np.cos(flex), -np.cos(abd) * np.cos(flex),
                  np.sin(flex) * np.ones_like(abd)], -1)
    h = -side * horiz * np.ones_like(flex)
    x = d[..., 0] * np.cos(h) + d[..., 2] * np.sin(h)
    zz = -d[..., 0] * np.sin(h) + d[..., 2] * np.cos(h)
    return np.stack([x, d[..., 1], zz], -1)


def _smooth_env(t, start, end, ramp):
    """1 inside [start, end] with cosine ramps of width `ramp` (all in clip fraction)."""
    up = np.clip((t - start) / ramp, 0.0, 1.0)
    down = np.clip((end - t) / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))


class _Angles:
    """Joint-angle trajectories (arrays of shape (n, T)) for one person, at rest by default."""

    def __init__(self, n, t, rng):
        zero = np.zeros((n, t))
        sway = lambda amp: amp * np.sin(  # noqa: E731 - idle sway, a different one per angle
            2 * np.pi * rng.uniform(0.2, 1.0, (n, 1)) * np.linspace(0, 1, t)[None]
            + rng.uniform(0, 2 * np.pi, (n, 1)))
        self.torso_pitch, self.torso_lean = sway(0.04), sway(0.03)
        self.yaw, self.lift, self.step = sway(0.05), zero.copy(), zero.copy()
        # Rest posture differs per subject (arms hanging, hands in front, arms folded...).
        rest = rng.uniform(0.0, 1.0, (n, 1))
        self.arm = {s: dict(flex=0.05 + 0.5 * rest + sway(0.08), abd=0.12 + sway(0.04),
                            fflex=0.25 + 1.4 * rest + sway(0.1), fabd=0.1 + zero,
                            horiz=0.6 * rest + zero) for s in (1, -1)}
        self.leg = {s: dict(flex=sway(0.02), abd=0.05 + zero, sflex=zero.copy()) for s in (1, -1)}


def _take(a: _Angles, m) -> _Angles:
    """The trajectories of the samples selected by mask `m` (copies)."""
    sub = object.__new__(_Angles)
    sub.__dict__ = {k: (v[m] if isinstance(v, np.ndarray) else
                        {s: {kk: vv[m] for kk, vv in d.items()} for s, d in v.items()})
                    for k, v in a.__dict__.items()}
    return sub


def _put(a: _Angles, m, sub: _Angles) -> None:
    for k, v in sub.__dict__.items():
        if isinstance(v, np.ndarray):
            getattr(a, k)[m] = v
        else:
            for s, d in v.items():
                for kk, vv in d.items():
                    getattr(a, k)[s][kk][m] = vv


def _act(c, a: _Angles, p, e, amp, side, turn_dir):
    """Writes class `c`'s trajectory into `a`. p: phase (n,T), e: envelope, amp/side: (n,1)."""
    osc = lambda: 0.5 - 0.5 * np.cos(p)  # noqa: E731 - 0..1, starting at rest
    if c == 0:  # wave: one arm raised sideways, forearm swinging in the frontal plane
        for s in (1, -1):
            m = (side == s).astype(float)
            arm = a.arm[s]
            arm["abd"] += m * e * amp * 1.2
            arm["flex"] += m * e * 0.3
            arm["fabd"] += m * e * (2.4 + 0.45 * np.sin(p))
            arm["fflex"] += m * e * (0.1 - 0.25)
    elif c == 1:  # clap: arms forward, hands meeting in front
        for s in (1, -1):
            arm = a.arm[s]
            arm["flex"] += e * amp * 1.2
            arm["fflex"] += e * (amp * 1.2 + 0.3)
            arm["horiz"] += e * (0.15 + 0.55 * osc())
    elif c == 2:  # squat
        q = e * amp * osc()
        for s in (1, -1):
            a.leg[s]["flex"] += 1.4 * q
            a.leg[s]["sflex"] += -0.9 * q
            a.arm[s]["flex"] += 1.2 * q
            a.arm[s]["fflex"] += 1.2 * q
        a.torso_pitch += 0.45 * q
    elif c == 3:  # jump: crouch, take off with arms swinging up
        up = np.maximum(np.sin(p), 0) ** 2 * e
        crouch = np.maximum(-np.sin(p), 0) * e
        a.lift += amp * 0.3 * up
        for s in (1, -1):
            a.leg[s]["flex"] += 0.7 * crouch
            a.leg[s]["sflex"] += -0.5 * crouch
            a.arm[s]["flex"] += 2.2 * up - 0.5 * crouch
            a.arm[s]["fflex"] += 2.2 * up - 0.5 * crouch
    elif c == 4:  # kick: one leg swings forward
        q = np.maximum(np.sin(p), 0) ** 3 * e
        for s in (1, -1):
            m = (side == s).astype(float)
            a.leg[s]["flex"] += m * amp * 1.4 * q
            a.leg[s]["sflex"] += m * amp * 1.1 * q
            a.arm[s]["abd"] += 0.5 * q
        a.torso_pitch += -0.25 * q
    elif c == 5:  # punch: alternating straight punches from a guard
        for s, sign in ((1, 1.0), (-1, -1.0)):
            q = np.maximum(sign * np.sin(p), 0) ** 2
            arm = a.arm[s]
            arm["flex"] += e * (0.6 + amp * 0.9 * q)
            arm["fflex"] += e * (0.6 + amp * 0.9 * q + 1.6 * (1 - q))
            arm["horiz"] += e * 0.25
    elif c == 6:  # bow: the torso pitches forward, arms hanging
        q = e * amp * osc()
        a.torso_pitch += 1.1 * q
        for s in (1, -1):
            a.arm[s]["flex"] += -0.85 * q
            a.arm[s]["fflex"] += -0.85 * q
    elif c == 7:  # raise both arms sideways above the head
        q = e * np.minimum(1.0, amp) * osc()
        for s in (1, -1):
            a.arm[s]["abd"] += 2.6 * q
            a.arm[s]["fabd"] += 2.7 * q
            a.arm[s]["fflex"] += -0.2 * q
    elif c == 8:  # turn around on the spot with small steps
        prog = np.cumsum(e, axis=1) / np.maximum(e.sum(1, keepdims=True), 1e-6)
        a.yaw += turn_dir * amp * 1.5 * np.pi * prog
        for s in (1, -1):
            st = 0.2 * e * np.maximum(s * np.sin(p * 4), 0)
            a.leg[s]["flex"] += st
            a.leg[s]["sflex"] += -st
    elif c == 9:  # walk in place: alternating knee raise and arm swing
        for s in (1, -1):
            st = e * amp * np.maximum(s * np.sin(p), 0)
            a.leg[s]["flex"] += 0.9 * st
            a.leg[s]["sflex"] += -0.6 * st
            a.arm[s]["flex"] += -s * 0.4 * e * amp * np.sin(p)
            a.arm[s]["fflex"] += -s * 0.4 * e * amp * np.sin(p)
        a.lift += 0.02 * e * np.abs(np.sin(p))
    elif c == 10:  # hand to head (drinking / phone call)
        q = e * osc()
        for s in (1, -1):
            m = (side == s).astype(float)
            arm = a.arm[s]
            arm["flex"] += m * amp * 0.8 * q
            arm["fflex"] += m * (2.5 * q)
            arm["horiz"] += m * 0.5 * q
    elif c == 11:  # handshake (each person's right arm forward, shaking)
        arm = a.arm[-1]
        arm["flex"] += e * (0.65 * amp + 0.12 * np.sin(p))
        arm["fflex"] += e * (0.75 * amp + 0.25 + 0.12 * np.sin(p))
        arm["horiz"] += e * 0.2


def _pose(a: _Angles, body):
    """Forward kinematics: angles (n,T) + body (n,1) sizes → joints (n, T, 25, 3), body frame."""
    n, t = a.yaw.shape
    j = np.zeros((n, t, NUM_JOINTS, 3))
    b = {k: v[:, :, None] for k, v in body.items()}  # (n,1,1) for broadcasting against xyz
    up = np.array([0.0, 1.0, 0.0])
    # Upper body in the torso frame (origin: base of spine), rotated by pitch/lean below.
    ub = np.zeros((n, t, NUM_JOINTS, 3))
    ub[:, :, 1] = up * b["spine"]
    ub[:, :, 20] = up * (2 * b["spine"])
    ub[:, :, 2] = ub[:, :, 20] + up * b["neck"]
    ub[:, :, 3] = ub[:, :, 2] + up * b["head"]
    for s, (sh, el, wr, ha, tip, th) in ((1, (4, 5, 6, 7, 21, 22)), (-1, (8, 9, 10, 11, 23, 24))):
        arm = a.arm[s]
        ua = _limb_dir(arm["flex"], arm["abd"], s, arm["horiz"])
        fa = _limb_dir(arm["fflex"], arm["fabd"], s, arm["horiz"])
        ub[:, :, sh] = ub[:, :, 20] + np.array([s, -0.1, 0.0]) * b["shoulder"]
        ub[:, :, el] = ub[:, :, sh] + ua * b["upper_arm"]
        ub[:, :, wr] = ub[:, :, el] + fa * b["forearm"]
        ub[:, :, ha] = ub[:, :, wr] + fa * b["hand"]
        ub[:, :, tip] = ub[:, :, ha] + fa * (0.7 * b["hand"])
        thumb = fa + np.array([-s * 0.6, 0.0, 0.6])
        ub[:, :, th] = ub[:, :, wr] + thumb / np.linalg.norm(thumb, axis=-1, keepdims=True) * (
            0.6 * b["hand"])
    rot = _rot_z(a.torso_lean) @ _rot_x(-a.torso_pitch)  # positive pitch bends forward (+z)
    upper = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23, 24)
    j[:, :, upper] = ub[:, :, upper] @ rot.swapaxes(-1, -2)  # rotate each (n, t) frame
    for s, (hip, knee, ankle, foot) in ((1, (12, 13, 14, 15)), (-1, (16, 17, 18, 19))):
        leg = a.leg[s]
        th_dir = _limb_dir(leg["flex"], leg["abd"], s)
        sh_dir = _limb_dir(leg["sflex"], leg["abd"], s)
        j[:, :, hip] = np.array([s, -0.5, 0.0]) * b["hip"]
        j[:, :, knee] = j[:, :, hip] + th_dir * b["thigh"]
        j[:, :, ankle] = j[:, :, knee] + sh_dir * b["shin"]
        j[:, :, foot] = j[:, :, ankle] + np.array([0.0, -0.35, 0.95]) * b["foot"]
    # Keep the lower foot on the ground, then add the jump lift.
    ground = np.minimum(j[:, :, 14, 1], j[:, :, 18, 1])
    j[..., 1] += (-ground + a.lift)[..., None]
    return j @ _rot_y(a.yaw).swapaxes(-1, -2)


def _bodies(n, rng):
    scale = rng.uniform(0.85, 1.15, (n, 1))
    base = dict(spine=0.25, neck=0.07, head=0.16, shoulder=0.18, upper_arm=0.29, forearm=0.26,
                hand=0.08, hip=0.1, thigh=0.43, shin=0.41, foot=0.15)
    return {k: v * scale * rng.uniform(0.92, 1.08, (n, 1)) for k, v in base.items()}


def _generate_chunk(labels, lengths, rng):
    """Returns (n, 3, Tmax, 25, 2) float32 for one chunk (frames ≥ lengths[i] are garbage)."""
    n, tmax = len(labels), int(lengths.max())
    tt = np.arange(tmax)[None] / np.maximum(lengths[:, None] - 1, 1)  # clip fraction, (n, Tmax)
    cyc = np.array([rng.integers(*_CYCLES[c], endpoint=True) for c in labels])[:, None]
    phase = 2 * np.pi * cyc * tt + rng.uniform(-0.3, 0.3, (n, 1))
    start = rng.uniform(0.0, 0.15, (n, 1))
    env = _smooth_env(tt, start, 1.0 - rng.uniform(0.0, 0.15, (n, 1)), 0.08)
    amp = rng.uniform(0.45, 1.2, (n, 1))
    side = np.where(rng.random((n, 1)) < 0.75, -1, 1)  # right-handed mostly
    turn_dir = np.where(rng.random((n, 1)) < 0.5, -1.0, 1.0)
    main, other = _Angles(n, tmax, rng), _Angles(n, tmax, rng)
    for c in np.unique(labels):
        m = labels == c
        sub = _take(main, m)
        _act(c, sub, phase[m], env[m], amp[m], side[m], turn_dir[m])
        _put(main, m, sub)
    inter = labels == 11
    # The second person: a partner facing the first (handshake) or a bystander (idle sway).
    if inter.any():
        sub = _take(other, inter)
        _act(11, sub, phase[inter] + 0.2, env[inter], amp[inter], side[inter], turn_dir[inter])
        _put(other, inter, sub)
    # Half of the bystanders do an action of their own (a distractor), the others idle.
    busy = ~inter & (rng.random(n) < 0.5)
    other_label = np.where(busy, rng.integers(0, NUM_CLASSES - 1, n), -1)
    for c in np.unique(other_label[other_label >= 0]):
        m = other_label == c
        sub = _take(other, m)
        _act(c, sub, phase[m] * rng.uniform(0.6, 1.4), env[m], 0.7 * amp[m], -side[m],
             turn_dir[m])
        _put(other, m, sub)
    facing = rng.uniform(-0.15, 0.15, (n, 1))
    gap = np.where(inter[:, None], rng.uniform(0.9, 1.2, (n, 1)), rng.uniform(0.9, 1.6, (n, 1)))
    other.yaw += np.where(inter[:, None], -np.pi / 2, rng.uniform(-0.6, 0.6, (n, 1)))
    main.yaw += np.where(inter[:, None], np.pi / 2, 0.0)
    x1 = _pose(main, _bodies(n, rng))
    x2 = _pose(other, _bodies(n, rng))
    x1 = x1 + np.array([-0.5, 0.0, 0.0]) * inter[:, None, None, None] * gap[..., None, None]
    x2 = x2 + np.array([1.0, 0.0, 0.0]) * gap[..., None, None] * np.where(
        inter, 0.5, np.where(rng.random(n) < 0.5, 1.0, -1.0))[:, None, None, None]
    two = inter | (rng.random(n) < 0.25)
    x2 = x2 * two[:, None, None, None]
    swap = two & (rng.random(n) < 0.2)
    persons = np.stack([np.where(swap[:, None, None, None], x2, x1),
                        np.where(swap[:, None, None, None], x1, x2)], axis=-1)  # (n,T,V,3,M)
    # World → camera: the subject faces the camera (yaw π) seen from a random view.
    view = _rot_x(rng.uniform(-0.2, 0.35, n))[:, None] @ _rot_y(
        np.pi + facing[:, 0] + rng.uniform(-1.3, 1.3, n))[:, None]
    cam = view[:, :, None] @ persons  # (n,1,1,3,3) @ (n,T,V,3,M)
    offset = np.stack([rng.uniform(-1.0, 1.0, n), rng.uniform(-1.2, -0.2, n),
                       rng.uniform(2.2, 4.5, n)], -1)
    noise = rng.normal(size=cam.shape) * rng.uniform(0.005, 0.03, n)[:, None, None, None, None]
    present = np.stack([np.ones(n, bool), two], -1)
    present = np.where(swap[:, None], present[:, ::-1], present)[:, None, None, None, :]
    cam = (cam + offset[:, None, None, :, None] + noise) * present
    return cam.transpose(0, 3, 1, 2, 4).astype(np.float32)  # (n, 3, T, V, M)


def generate(num_samples: int, *, split: str = "train", seed: int = 0, min_frames: int = 48,
             max_frames: int = 96, start: int = 0):
    """Yields examples `start .. num_samples-1` of a split (see module docstring).

    Labels cycle through the classes (index i has label i % NUM_CLASSES), so any prefix of
    length k·NUM_CLASSES is exactly balanced.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown synthetic split {split!r}; expected one of {sorted(SPLITS)}")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    for k in range(start // _CHUNK, -(-num_samples // _CHUNK)):
        rng = np.random.default_rng([seed, SPLITS[split], k, min_frames, max_frames])
        idx = np.arange(k * _CHUNK, (k + 1) * _CHUNK)
        labels = idx % NUM_CLASSES
        lengths = rng.integers(min_frames, max_frames, _CHUNK, endpoint=True)
        data = _generate_chunk(labels, lengths, rng)
        for i in range(_CHUNK):
            g = int(idx[i])
            if g < start or g >= num_samples:
                continue
            yield {"data": np.ascontiguousarray(data[i, :, : lengths[i]]), "label": int(labels[i]),
                   "name": f"synthetic_{split}_{g:06d}", "length": int(lengths[i])}


class SyntheticSource:
    """Random-access in-memory source of the built-in dataset (`len`, `[i]` → example dict)."""

    def __init__(self, num_samples: int, *, split: str = "train", seed: int = 0,
                 min_frames: int = 48, max_frames: int = 96):
        self._examples = list(generate(num_samples, split=split, seed=seed,
                                       min_frames=min_frames, max_frames=max_frames))
        self.num_classes = NUM_CLASSES
        self.class_names = CLASS_NAMES

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, i: int) -> dict:
        ex = self._examples[int(i)]
        return {**ex, "data": ex["data"].copy()}

    def __repr__(self) -> str:
        return f"SyntheticSource(num_samples={len(self)})"
