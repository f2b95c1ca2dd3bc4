"""Cross-check :class:`gomap.Map` against the real Go runtime.

Random operation traces are played twice: on a real Go map (``map[K]int64``,
by the small Go program in ``gomap/_harness``, run with ``GODEBUG=cpu.aes=off``
so Go uses its portable hash keyed by ``runtime.hashkey``), and on
``gomap.Map`` built with the ``hashkey``, the ``fastrand``/``rand`` draws the Go
program reports and the Go release of the toolchain (``go=``).  After every
operation the result, ``len`` and the full ``snapshot()`` must be equal, bit for
bit (float keys are compared by their bit patterns, so ``-0.0`` is not
``+0.0``).  Any Go release with the classic map works: 1.19 to 1.24 (1.24 is
built with ``GOEXPERIMENT=noswissmap``).

The work is split by job: :mod:`.traces` (generating traces, the wire format),
:mod:`.harness` (finding Go toolchains, building and running the harness),
:mod:`.compare` (replaying on gomap and comparing), :mod:`.report` (running a
cross-check and reporting it).  Everything public is re-exported here.

Command line: ``python -m gomap crosscheck --help``; guide: ``docs/crosscheck.md``.
"""

from __future__ import annotations

from .compare import (Mismatch, TraceResult, _Draws, _Expected, describe_op, diff_snapshots, replay,
                      replay_saved, save_failure)
from .harness import (HARNESS_DIR, HARNESS_FILES, INSTALL_HINT, RELEASES, GoNotFound, HarnessError, UnsupportedGo,
                      _go_version, build_harness, find_go, find_toolchains, go_release, run_harness, toolchain_dir)
from .report import ReleaseRow, Report, format_release_table, run_all_go, run_crosscheck
from .traces import (_INT_RANGES, ALL_KINDS, CLEAR, DELETE, EXTRA_KINDS, ITER_NEW, ITER_NEXT, KEY_KINDS, LOOKUP,
                     OP_NAMES, SET, Trace, f32_bits, f32_from_bits, f64_bits, f64_from_bits, fmt_key,
                     generate_trace, generate_traces, key_from_wire, key_identity, key_to_wire, to_f32,
                     trace_from_wire, trace_seed)

__all__ = [
    "KEY_KINDS",
    "EXTRA_KINDS",
    "Trace",
    "TraceResult",
    "Report",
    "GoNotFound",
    "HarnessError",
    "UnsupportedGo",
    "RELEASES",
    "find_toolchains",
    "toolchain_dir",
    "go_release",
    "run_all_go",
    "format_release_table",
    "ReleaseRow",
    "generate_trace",
    "generate_traces",
    "trace_seed",
    "find_go",
    "build_harness",
    "run_harness",
    "replay",
    "diff_snapshots",
    "run_crosscheck",
    "save_failure",
    "replay_saved",
    "trace_from_wire",
]
