#!/usr/bin/env python3
"""Writes the PyTorch checkpoint fixtures in tests/data/ without PyTorch.

torch.save(obj, f) writes a zip (entries stored, not deflated) holding <stem>/data.pkl (a
protocol-2 pickle in which each tensor is `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, requires_grad, backward_hooks)` and each storage a persistent id
('storage', torch.FloatStorage, key, 'cpu', numel)), <stem>/data/<key> (raw little-endian
storage bytes), <stem>/byteorder and <stem>/version. This script emulates exactly that with
stand-in classes registered under the torch module names, so the pickles name the same
globals as real checkpoints. Values follow a formula the tests recompute.

  tiny_ordereddict.pt  model.state_dict() of d_model 8 x 1 layer: an OrderedDict with the
                       _metadata attribute, float32 storages
  tiny_dict.pt         the same weights as a plain dict with float16 storages
  tiny_wrong_keys.pt   the OrderedDict without head.2.bias and with an extra key
  hostile.pt           a pickle that calls os.system (must be refused, nothing run)
"""
import collections
import io
import math
import os
import pickle
import struct
import sys
import types
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data")

torch_mod = types.ModuleType("torch")
utils_mod = types.ModuleType("torch._utils")
sys.modules["torch"] = torch_mod
sys.modules["torch._utils"] = utils_mod


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
torch_mod._utils = utils_mod


class FloatStorage:
    pass


class HalfStorage:
    pass


for cls in (FloatStorage, HalfStorage):
    cls.__module__ = "torch"
    setattr(torch_mod, cls.__name__, cls)


class Storage:
    def __init__(self, key, kind, values):
        self.key, self.kind, self.values = key, kind, values


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce_ex__(self, protocol):
        stride, s = [], 1
        for d in reversed(self.shape):
            stride.insert(0, s)
            s *= d
        return (_rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", len(obj.values))
        return None


def shapes(d, layers=1):
    e, r, s = 2 * d, math.ceil(d / 16), 16
    out = [("embedding.weight", [256, d])]
    for i in range(layers):
        p = f"blocks.{i}."
        out += [(p + "ln1.weight", [d]), (p + "ln1.bias", [d]),
                (p + "mamba.in_proj.weight", [2 * e, d]), (p + "mamba.conv1d.weight", [e, 1, 4]),
                (p + "mamba.conv1d.bias", [e]), (p + "mamba.x_proj.weight", [r + 2 * s, e]),
                (p + "mamba.dt_proj.weight", [e, r]), (p + "mamba.dt_proj.bias", [e]),
                (p + "mamba.A_log", [e, s]), (p + "mamba.D", [e]),
                (p + "mamba.out_proj.weight", [d, e]), (p + "ln2.weight", [d]), (p + "ln2.bias", [d]),
                (p + "ff.0.weight", [4 * d, d]), (p + "ff.0.bias", [4 * d]),
                (p + "ff.2.weight", [d, 4 * d]), (p + "ff.2.bias", [d])]
    out += [("head.0.weight", [d, d]), ("head.0.bias", [d]), ("head.2.weight", [256, d]), ("head.2.bias", [256])]
    return out


def value(t, i):
    # Exactly representable in float16: multiples of 1/64 in [-2, 2).
    return ((t * 131 + i * 7) % 256 - 128) / 64.0


def build(kind, ordered):
    sd = collections.OrderedDict() if ordered else {}
    storages = []
    for t, (name, shape) in enumerate(shapes(8)):
        n = 1
        for x in shape:
            n *= x
        st = Storage(str(t), kind, [value(t, i) for i in range(n)])
        storages.append(st)
        sd[name] = Tensor(st, shape)
    if ordered:
        sd._metadata = collections.OrderedDict([("", {"version": 1})])
    return sd, storages


def write(path, obj, storages, stem):
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{stem}/data.pkl", buf.getvalue())
        z.writestr(f"{stem}/byteorder", "little")
        for st in storages:
            fmt = "<%d%s" % (len(st.values), "f" if st.kind is FloatStorage else "e")
            z.writestr(f"{stem}/data/{st.key}", struct.pack(fmt, *st.values))
        z.writestr(f"{stem}/version", "3\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    sd, st = build(FloatStorage, True)
    write(os.path.join(OUT, "tiny_ordereddict.pt"), sd, st, "tiny_ordereddict")
    sd, st = build(FloatStorage, True)
    del sd["head.2.bias"]
    sd["extra.weight"] = Tensor(st[0], [256, 8])
    write(os.path.join(OUT, "tiny_wrong_keys.pt"), sd, st[:-1], "tiny_wrong_keys")
    sd, st = build(HalfStorage, False)
    write(os.path.join(OUT, "tiny_dict.pt"), sd, st, "tiny_dict")
    evil = b"\x80\x02cos\nsystem\nq\x00X\x10\x00\x00\x00touch /tmp/pwnedq\x01\x85q\x02Rq\x03."
    with zipfile.ZipFile(os.path.join(OUT, "hostile.pt"), "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("hostile/data.pkl", evil)
        z.writestr("hostile/version", "3\n")


if __name__ == "__main__":
    main()
