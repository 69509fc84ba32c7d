"""Can this process open a window? Asked before Qt is, because Qt's answer is an abort.

Without a usable display Qt's xcb plugin prints a hint about ``libxcb-cursor0``
(whatever the real cause) and aborts the process (rc 134). Here the three real
causes are told apart, each in one sentence: no display at all, an X server that
does not answer, and the xcb libraries Qt needs that are not installed. Nothing
here imports Qt: it runs before the first ``QApplication``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

#: what Qt's xcb platform plugin (and libQt6XcbQpa) loads: soname -> Debian package
XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
}


def has_display(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether a window can be shown somewhere: an X or Wayland display, a platform
    plugin chosen explicitly (``QT_QPA_PLATFORM=offscreen`` counts), or not Linux."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return True  # Windows and macOS always have their native platform
    return bool(env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def _uses_xcb(env: Mapping[str, str]) -> bool:
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.startswith("xcb")
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def missing_libraries(libraries: Mapping[str, str] | None = None,
                      load: Callable[[str], object] = ctypes.CDLL) -> list[str]:
    """The Debian packages of the libraries in ``libraries`` that cannot be loaded."""
    missing: list[str] = []
    for soname, package in (XCB_LIBRARIES if libraries is None else libraries).items():
        try:
            load(soname)
        except OSError:
            if package not in missing:
                missing.append(package)
    return missing


def x_server_answers(display: str) -> bool:
    """Whether the X server named by ``display`` accepts a connection (via libxcb)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return False  # reported as a missing library instead
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        return bool(conn) and xcb.xcb_connection_has_error(conn) == 0
    finally:
        if conn:
            xcb.xcb_disconnect(conn)


def display_problem(env: Mapping[str, str] | None = None,
                    platform: str | None = None) -> str | None:
    """One sentence saying why no window can open here, or None when one can."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    if not has_display(env, platform):
        return ("no display found (DISPLAY and WAYLAND_DISPLAY are not set): run this on a "
                "desktop, or under `xvfb-run -a`; `./scripts/demo` works without one.")
    if not _uses_xcb(env):
        return None
    missing = missing_libraries()
    if missing:
        return ("Qt cannot open a window because these libraries are missing: "
                f"sudo apt-get install {' '.join(missing)}")
    display = env.get("DISPLAY", "")
    if display and not x_server_answers(display):
        return (f"the X display {display!r} does not answer (is the X server running, "
                "and may this user connect to it?).")
    return None
