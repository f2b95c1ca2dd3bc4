"""gomap's PEP 517 build backend: maturin's, with one change.

maturin's pip hook builds wheels with ``--compatibility off`` unless told
otherwise, which tags them ``linux_x86_64`` (a tag PyPI refuses and
``auditwheel`` calls non-compliant). gomap's extension links only to the C
library, so maturin's own auditwheel check can always find its manylinux (or
musllinux) tag. ``build_wheel`` therefore passes an empty ``--compatibility``,
which makes maturin detect and check the tag (``manylinux_2_34_x86_64`` on a
glibc 2.34+ machine, ``manylinux_2_28_*`` in a manylinux_2_28 container, ...).
Anything given in ``MATURIN_PEP517_ARGS`` or ``--config-settings
maturin.build-args=...`` that names ``--compatibility``/``--manylinux`` wins.
Every other hook (sdist, editable installs, metadata) is maturin's unchanged.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any, Dict, Mapping, Optional

import maturin
from maturin import *  # noqa: F401,F403 -- every hook maturin provides

_ARGS_KEYS = ("maturin.build-args", "build-args")


def _with_detected_tag(config_settings: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    settings: Dict[str, Any] = dict(config_settings or {})
    key = next((k for k in _ARGS_KEYS if k in settings), None)
    if key is None:
        args = shlex.split(os.environ.get("MATURIN_PEP517_ARGS", ""))
        key = "maturin.build-args"
    else:
        raw = settings[key]
        args = shlex.split(raw) if isinstance(raw, str) else list(raw)
    if sys.platform.startswith("linux") and not any(
        a in ("--compatibility", "--manylinux") or a.startswith(("--compatibility=", "--manylinux="))
        for a in args
    ):
        args.append("--compatibility")  # no value: maturin detects the manylinux/musllinux tag
    settings[key] = args
    return settings


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    return maturin.build_wheel(wheel_directory, _with_detected_tag(config_settings), metadata_directory)
