"""Device memory of a block of code, counted at CuPy's memory pool (the ledger's GPU peak).

    with PoolPeak() as usage:
        step()
    usage.peak_bytes        # most bytes held at once by arrays made inside the block
    usage.start_bytes + usage.peak_bytes   # the pool's in-use high-water mark during the block

How: a ``cupy.cuda.MemoryHook`` sees every block the pool hands out (``malloc_postprocess``)
and every block given back to it (``free_postprocess``), with its pointer and its size as the
pool holds it (``mem_size``: the request rounded up to the pool's 512-byte unit, the bytes really
taken). ``current_bytes`` = bytes handed out minus bytes given back since entry, ``peak_bytes`` its
maximum; ``current_bytes`` goes below zero when the block frees arrays made before it.
``start_bytes`` is ``pool.used_bytes()`` at entry. Everything allocated through CuPy's pool is
seen, cuFFT work areas included (CuPy allocates them from it); what the pool does not hand out
is not: cuBLAS's own workspace, the CUDA context, memory that other libraries (PyTorch) allocate.
Not process RSS, never nvidia-smi.

Hooks are per thread (CuPy's rule): only allocations made by the thread that entered count.
Importing this module imports no CuPy; entering a PoolPeak where CuPy or a GPU is missing raises
the error of ``specref.Backend("cupy")``, which says what to install.
"""
from __future__ import annotations

import itertools

_hook_class = None
_serial = itertools.count()


class PoolPeak:
    """Context manager counting CuPy pool bytes (see the module docstring).

    ``pool``: the memory pool to read ``used_bytes()`` from (default: CuPy's default pool).
    """

    def __init__(self, pool=None):
        self.pool = pool
        self.start_bytes = self.current_bytes = self.peak_bytes = 0
        self.mallocs = self.frees = 0
        self._live = {}
        self._hook = None

    def __enter__(self):
        from specref.backend import Backend

        cupy = Backend("cupy").xp
        pool = self.pool if self.pool is not None else cupy.get_default_memory_pool()
        self.start_bytes = int(pool.used_bytes())
        self._hook = make_hook(self)
        self._hook.__enter__()
        return self

    def __exit__(self, *exc_info):
        hook, self._hook = self._hook, None
        hook.__exit__(*exc_info)
        return False

    def allocated(self, pointer, nbytes):
        """Count ``nbytes`` handed out at ``pointer`` (called by the hook)."""
        self._live[pointer] = nbytes
        self.mallocs += 1
        self.current_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    def freed(self, pointer, nbytes):
        """Count the block at ``pointer`` given back (called by the hook); a block made before
        entry counts with the size the pool reports for it."""
        self.frees += 1
        self.current_bytes -= self._live.pop(pointer, nbytes)

    def as_dict(self):
        return {"start_bytes": self.start_bytes, "peak_bytes": self.peak_bytes,
                "current_bytes": self.current_bytes, "high_water_bytes": self.start_bytes + self.peak_bytes,
                "mallocs": self.mallocs, "frees": self.frees,
                "source": "cupy.cuda.MemoryHook on the memory pool (malloc/free mem_size)"}

    def __repr__(self):
        return (f"PoolPeak(start_bytes={self.start_bytes}, peak_bytes={self.peak_bytes}, "
                f"current_bytes={self.current_bytes})")


def track(pool=None):
    """A new :class:`PoolPeak` (the entry point specref.memory's ledger looks for)."""
    return PoolPeak(pool)


def make_hook(counter):
    """A ``cupy.cuda.MemoryHook`` that reports to ``counter`` (``allocated`` / ``freed``)."""
    global _hook_class
    if _hook_class is None:
        import cupy

        class _PoolHook(cupy.cuda.MemoryHook):
            def __init__(self, target):
                self.name = f"specref-pool-peak-{next(_serial)}"   # unique: hooks may nest
                self.target = target

            def malloc_postprocess(self, **kwargs):
                self.target.allocated(kwargs["mem_ptr"], kwargs["mem_size"])

            def free_postprocess(self, **kwargs):
                self.target.freed(kwargs["mem_ptr"], kwargs["mem_size"])

        _hook_class = _PoolHook
    return _hook_class(counter)
