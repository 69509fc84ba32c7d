"""Screenshots of the host's Insights window (overview and "what changed") over a host
whose stores the insights generator filled with 3,000 conversations of the last 30 days.

Run under Xvfb: xvfb-run -a -s "-screen 0 1600x1100x24" .venv/bin/python docs/tools/insights_screenshots.py
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import argparse, asyncio, logging, os, tempfile, time
from pathlib import Path

tmp = Path(tempfile.mkdtemp())
os.environ["HITL_DATA_DIR"] = str(tmp / "data"); os.environ["HITL_CONFIG_DIR"] = str(tmp / "config")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
os.environ.pop("OPENAI_API_KEY", None)
os.environ.setdefault("HITL_MDNS_INTERFACES", "127.0.0.1")  # no multicast off this machine
OUT = Path(__file__).resolve().parents[1] / "screenshots"
logging.basicConfig(level=logging.WARNING)

from hitl_desktop.app.qt import run_qt
from hitl_desktop.config import Settings, resolve_paths
from tests.support.insights_gen import DAY, generate


async def main() -> int:
    from hitl_desktop.app.host_window import HostWindowApp
    paths = resolve_paths().ensure()
    generate(paths.data_dir, 3000, start=time.time() - 29 * DAY, days=28.5)
    args = argparse.Namespace(bind="127.0.0.1", port=0, public_host=None, tls_cert=None,
                              tls_key=None, no_discovery=True, provider="offline", model=None)
    app = HostWindowApp(paths, Settings(provider="offline"), args)
    await app.start()
    iw = app.window.open_insights()
    iw.resize(1280, 1040)
    while iw.overview.report is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    iw.grab().save(str(OUT / "insights.png"))
    iw.show_changes("s_000012")
    while "line-through" not in iw.changes.browser.toHtml():
        await asyncio.sleep(0.05)
    iw.changes.browser.setHtml(iw.changes.browser.toHtml())  # settle layout
    await asyncio.sleep(0.3)
    iw.resize(1000, 520)
    await asyncio.sleep(0.3)
    iw.grab().save(str(OUT / "insights-changes.png"))
    iw.close()
    await app.aclose()
    return 0


sys.exit(run_qt(main, app_name="HITL Desk host"))
