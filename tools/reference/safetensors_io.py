"""Hand-written reader/writer for the safetensors format (no `safetensors` package needed).

Layout of a file:
    8 bytes   little-endian u64 N = length of the JSON header in bytes
    N bytes   UTF-8 JSON: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
              padded with spaces (0x20) so that 8 + N is a multiple of 8
    rest      raw little-endian tensor data, row-major; data_offsets are relative to the start of this section

The writer orders tensors like the reference implementation (larger element size first, then by name), so
every tensor starts at an offset aligned to its element size, and the byte stream is deterministic.
Supported dtypes: F32, F64, F16, BF16, I64, I32 (BF16 goes through its raw 16-bit pattern: numpy has no bfloat16).
"""

import json
import struct

import numpy as np
import torch

# safetensors dtype name -> (numpy little-endian dtype, torch dtype)
DTYPES = {
    "F64": (np.dtype("<f8"), torch.float64),
    "F32": (np.dtype("<f4"), torch.float32),
    "I64": (np.dtype("<i8"), torch.int64),
    "I32": (np.dtype("<i4"), torch.int32),
    "F16": (np.dtype("<f2"), torch.float16),
    "BF16": (np.dtype("<i2"), torch.bfloat16),  # raw bits
}
_BY_TORCH = {tdt: name for name, (_, tdt) in DTYPES.items()}


def save_file(tensors, path, metadata=None):
    """Writes {name: torch.Tensor} to `path`. `metadata` is an optional {str: str} map."""
    entries = []
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"bad tensor name {name!r}")
        if t.dtype not in _BY_TORCH:
            raise ValueError(f"{name}: unsupported dtype {t.dtype} (F32, F64, F16, BF16, I64, I32)")
        dtype = _BY_TORCH[t.dtype]
        np_dtype = DTYPES[dtype][0]
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        data = np.ascontiguousarray(t.numpy()).astype(np_dtype, copy=False).tobytes(order="C")
        entries.append((name, dtype, list(t.shape), data, np_dtype.itemsize))
    entries.sort(key=lambda e: (-e[4], e[0]))

    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError("__metadata__ must map str to str")
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for name, dtype, shape, data, _ in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((-(8 + len(text))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data, _ in entries:
            f.write(data)


def load_file(path):
    """Reads a safetensors file. Returns (tensors: {name: torch.Tensor}, metadata: {str: str})."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", blob, 0)
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n :]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    spans = []
    for name, info in header.items():
        dtype = info["dtype"]
        if dtype not in DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        np_dtype, _ = DTYPES[dtype]
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        count = 1
        for s in shape:
            count *= s
        if not (0 <= begin <= end <= len(data)) or end - begin != count * np_dtype.itemsize:
            raise ValueError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] do not fit shape {shape} {dtype}")
        arr = np.frombuffer(data[begin:end], dtype=np_dtype).reshape(shape).copy()
        tensors[name] = torch.from_numpy(arr).view(DTYPES[dtype][1]) if dtype == "BF16" else torch.from_numpy(arr)
        spans.append((begin, end))
    spans.sort()
    pos = 0
    for begin, end in spans:
        if begin != pos:
            raise ValueError(f"{path}: data section has a gap or overlap at byte {pos}")
        pos = end
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes after the last tensor")
    return tensors, metadata


def install_fixtures(generated, out, owned):
    """Replaces each of the script's own fixture entries (files or folders) in out by the freshly generated one."""
    import os
    import shutil
    for name in owned:
        dst = os.path.join(out, name)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        elif os.path.exists(dst):
            os.remove(dst)
        src = os.path.join(generated, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copyfile)(src, dst)


def print_sizes(files):
    """One line per generated file: its size and path."""
    for rel in sorted(files):
        print(f"  {len(files[rel]):8d}  {rel}")


def tree_bytes(root):
    """Every file under root by its relative path: two generations compare byte for byte."""
    import os
    files = {}
    for dp, _, fns in os.walk(root):
        for fn in fns:
            path = os.path.join(dp, fn)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = f.read()
    return files
