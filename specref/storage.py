"""Storage codecs for the feature maps layers keep between forward and backward.

A codec turns an array into a :class:`Stored` object (``encode``) and back (``decode``);
``nbytes`` is every byte it really holds (values, indices, index pointers, masks, scales) and
``pattern()`` the boolean mask of the stored (non-zero) entries, exact even under a lossy value
codec. :class:`Stored` is the protocol every kept map follows (the memory ledger recognizes a kept
map by it).

- ``dense``: keeps a reference to the array itself (the control; nothing is copied).
- ``csr``: the map flattened to (B*C, rest) as a ``scipy.sparse`` / ``cupyx.scipy.sparse``
  CSR matrix: per non-zero the value plus a 4-byte column index, plus B*C+1 row pointers.
- ``bitmask``: a packed bit mask (1 bit per entry) plus the non-zero values: compact when the
  density is high.
- value codecs on top of ``csr`` or ``bitmask`` (opt-in, lossy): ``-fp16`` keeps each complex
  value as two float16; ``-int8`` as two int8 with one float32 scale per (b, c) map.
Names: "dense", "csr", "bitmask", "csr-fp16", "csr-int8", "bitmask-fp16", "bitmask-int8".

Error of the value codecs, per real component c of a stored value (tests/test_storage.py):
``fp16`` rounds to the nearest float16, |error| <= 2^-11 |c| for |c| >= 2^-14 and <= 2^-25
below (subnormals); |c| > 65504 would overflow to inf, far above what a tanh output or an
"ortho" spectrum holds. ``int8``: |error| <= scale / 2 (plus float32 rounding), scale = the
largest |component| of the (b, c) map / 127. The pattern of non-zeros is exact under both.
"""
from __future__ import annotations

import numpy as np

from .backend import array_module
from .tree import leaf_layers

STRUCTURES = ("dense", "csr", "bitmask")
VALUE_CODECS = (None, "fp16", "int8")


def get_codec(name):
    """The codec called ``name`` (a codec object is returned as it is)."""
    if isinstance(name, Codec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"storage must be a codec name (str), got {type(name).__name__}")
    structure, _, values = name.partition("-")
    values = values or None
    if structure not in STRUCTURES or values not in VALUE_CODECS or (structure == "dense" and values):
        raise ValueError(f"unknown storage {name!r}; expected one of {', '.join(codec_names())}")
    return Codec(structure, values)


def codec_names():
    names = ["dense"]
    for structure in STRUCTURES[1:]:
        names += [structure] + [f"{structure}-{v}" for v in VALUE_CODECS[1:]]
    return names


class Codec:
    def __init__(self, structure="dense", values=None):
        self.structure, self.values = structure, values
        self.name = structure if values is None else f"{structure}-{values}"
        self.lossy = values is not None

    def encode(self, array):
        if self.structure == "dense":
            return DenseStored(array)
        rows = int(np.prod(array.shape[:2])) if array.ndim >= 2 else 1
        flat = array.reshape(rows, -1)
        if self.structure == "csr":
            return CSRStored(flat, array.shape, self.values)
        return BitmaskStored(flat, array.shape, self.values)

    def __repr__(self):
        return f"Codec({self.name!r})"


class Stored:
    """A feature map kept for backward, as a codec's ``encode`` returns it.

    A subclass holds its arrays and defines:

    - ``decode()``: the map again, an array of ``shape`` and ``dtype`` (exact unless the codec
      is lossy);
    - ``pattern()``: the boolean mask of its non-zero entries, exact under every codec;
    - ``arrays``: every array it holds, each once; ``nbytes`` is their total, and the memory
      ledger (:mod:`specref.memory`) counts them by their root buffers;
    - ``entries``, ``nonzeros``: how many feature-map entries it stands for, how many are non-zero.
    """

    arrays = ()
    entries = 0
    nonzeros = 0

    def decode(self):
        raise NotImplementedError

    def pattern(self):
        raise NotImplementedError

    @property
    def nbytes(self):
        return int(sum(a.nbytes for a in self.arrays))


class DenseStored(Stored):
    """The array itself, by reference."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype = array.shape, array.dtype

    def decode(self):
        return self.array

    def pattern(self):
        return self.array != 0

    @property
    def arrays(self):
        return (self.array,)

    @property
    def entries(self):
        return int(self.array.size)

    @property
    def nonzeros(self):
        return int(array_module(self.array).count_nonzero(self.array))


class _ValueStore:
    """Non-zero values, exact or through a value codec (fp16 pairs, int8 pairs + row scales)."""

    def __init__(self, values, row_of_value, rows, kind):
        xp = array_module(values)
        self.kind, self.dtype, self.size = kind, values.dtype, values.size
        self.scales = None
        if kind is None:
            self.data = values
        elif kind == "fp16":
            self.data = _as_pairs(values, xp).astype(xp.float16)
        else:
            pairs = _as_pairs(values, xp)
            peak = xp.zeros(rows, dtype=pairs.dtype)
            if values.size:
                peak_of_value = xp.abs(pairs).max(axis=1)
                _scatter_max(peak, row_of_value, peak_of_value, xp)
            self.scales = (peak / 127).astype(xp.float32)
            safe = xp.where(self.scales > 0, self.scales, 1)[row_of_value]
            # row_of_value is not kept: restore() is handed it again (from indptr or the mask),
            # so the only arrays held are the ones ``arrays`` lists and ``nbytes`` counts.
            self.data = xp.rint(pairs / safe[:, None]).astype(xp.int8)

    def restore(self, row_of_value):
        xp = array_module(self.data)
        if self.kind is None:
            return self.data
        pairs = self.data.astype(xp.float32)
        if self.kind == "int8":
            pairs = pairs * self.scales[row_of_value][:, None]
        out = pairs[:, 0] + 1j * pairs[:, 1] if np.issubdtype(self.dtype, np.complexfloating) else pairs[:, 0]
        return out.astype(self.dtype)

    @property
    def arrays(self):
        return (self.data,) if self.scales is None else (self.data, self.scales)


class CSRStored(Stored):
    """CSR arrays computed with plain array operations, the same on NumPy and CuPy: the non-zero
    mask, ``indptr`` as the cumulative sum of its row counts, ``indices`` from ``nonzero``. No
    dense-to-sparse conversion runs (cuSPARSE's drops purely imaginary complex values, cupy issue
    7035); :meth:`matrix` wraps the arrays as they are in a scipy / cupyx ``csr_matrix`` and
    :meth:`decode` scatters the values back without one. The one host read is the non-zero count
    (``nonzero``'s output size)."""

    def __init__(self, flat, shape, value_kind):
        xp = array_module(flat)
        mask = flat != 0
        self.shape, self.dtype, self.rows = shape, flat.dtype, flat.shape[0]
        self.width = flat.shape[1]
        index = _index_dtype(flat.size)
        self.indptr = xp.zeros(self.rows + 1, dtype=index)
        xp.cumsum(mask.sum(axis=1, dtype=index), dtype=index, out=self.indptr[1:])
        rows_of, columns = xp.nonzero(mask)
        self.indices = columns.astype(_index_dtype(self.width))
        self.values = _ValueStore(flat[rows_of, columns], rows_of, self.rows, value_kind)

    def _rows_of(self):
        return _rows_from_indptr(self.indptr, self.indices.size, array_module(self.indices))

    def matrix(self):
        """The map as a (B*C, rest) ``scipy.sparse`` / ``cupyx.scipy.sparse`` CSR matrix over the
        held arrays (values restored when a value codec is on)."""
        xp = array_module(self.indices)
        data = self.values.restore(self._rows_of() if self.values.kind == "int8" else None)
        return _sparse_module(xp).csr_matrix((data, self.indices, self.indptr), shape=(self.rows, self.width))

    def decode(self):
        xp = array_module(self.indices)
        rows_of = self._rows_of()
        out = xp.zeros((self.rows, self.width), dtype=self.dtype)
        out[rows_of, self.indices] = self.values.restore(rows_of if self.values.kind == "int8" else None)
        return out.reshape(self.shape)

    def pattern(self):
        xp = array_module(self.indices)
        mask = xp.zeros((self.rows, self.width), dtype=bool)
        mask[self._rows_of(), self.indices] = True
        return mask.reshape(self.shape)

    @property
    def arrays(self):
        return (self.indices, self.indptr) + self.values.arrays

    @property
    def entries(self):
        return self.rows * self.width

    @property
    def nonzeros(self):
        return int(self.indices.size)


class BitmaskStored(Stored):
    def __init__(self, flat, shape, value_kind):
        xp = array_module(flat)
        mask = flat != 0
        self.shape, self.dtype, self.width = shape, flat.dtype, flat.shape[1]
        self.bits = xp.packbits(mask.ravel())
        rows_of = xp.nonzero(mask)[0] if value_kind == "int8" else None
        self.values = _ValueStore(flat[mask], rows_of, flat.shape[0], value_kind)

    def pattern(self):
        xp = array_module(self.bits)
        n = int(np.prod(self.shape))
        return xp.unpackbits(self.bits)[:n].astype(bool).reshape(self.shape)

    def decode(self):
        xp = array_module(self.bits)
        mask = self.pattern()
        rows_of = xp.nonzero(mask.reshape(-1, self.width))[0] if self.values.kind == "int8" else None
        out = xp.zeros(self.shape, dtype=self.dtype)
        out[mask] = self.values.restore(rows_of)
        return out

    @property
    def arrays(self):
        return (self.bits,) + self.values.arrays

    @property
    def entries(self):
        return int(np.prod(self.shape))

    @property
    def nonzeros(self):
        return int(self.values.size)


class DerivedStored(Stored):
    """A map recomputed in backward from other kept maps: ``decode() = derive(*sources decoded)``.

    It holds no array of its own (``nbytes`` 0, no entries): the sources are counted where they
    were kept. Used where a layer's output is a cheap, exact function of maps already kept, such
    as a spectral downsampling of a block's output.
    """

    concat_axis = None      # set by stored_concatenation

    def __init__(self, derive, *sources):
        self.derive, self.sources = derive, sources

    def decode(self):
        return self.derive(*(source.decode() for source in self.sources))

    def pattern(self):
        return self.decode() != 0


def stored_concatenation(parts, axis):
    """A DerivedStored for ``concatenate([p.decode() for p in parts], axis)``.

    A part that is itself such a concatenation along ``axis`` is replaced by its own parts, so a
    chain of concatenations (a DenseNet block) decodes every kept map once, not once per level.
    """
    flat = []
    for part in parts:
        if isinstance(part, DerivedStored) and part.concat_axis == axis:
            flat.extend(part.sources)
        else:
            flat.append(part)
    stored = DerivedStored(lambda *maps: array_module(*maps).concatenate(maps, axis=axis), *flat)
    stored.concat_axis = axis
    return stored


def _as_pairs(values, xp):
    if xp.iscomplexobj(values):
        return xp.stack([values.real, values.imag], axis=1)
    return values[:, None]


def _rows_from_indptr(indptr, nonzeros, xp):
    """The row of each of the ``nonzeros`` stored values: where its position falls in ``indptr``
    (a search, no per-row repeat counts read back to the host)."""
    return xp.searchsorted(indptr, xp.arange(nonzeros, dtype=indptr.dtype), side="right") - 1


def _index_dtype(largest):
    """int32 (scipy's and cuSPARSE's index type: 4 bytes per index) where ``largest`` fits."""
    return np.int32 if largest < np.iinfo(np.int32).max else np.int64


def _scatter_max(target, index, values, xp):
    if xp is np:
        np.maximum.at(target, index, values)
    else:  # cupyx has the scatter for CuPy arrays
        import cupyx

        cupyx.scatter_max(target, index, values)


def _sparse_module(xp):
    if xp is np:
        import scipy.sparse as sparse
    else:
        import cupyx.scipy.sparse as sparse
    return sparse


def set_storage(net, storage):
    """Give every layer of ``net`` the codec ``storage`` (a name or a Codec); returns the codec."""
    codec = get_codec(storage)
    for _, layer in leaf_layers(net):
        layer.storage = codec
    return codec
