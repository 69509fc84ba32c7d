"""Screenshots of the host window, the wizard (key page failures, upload, summary), the KB browser.

Run under Xvfb: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/tools/host_wizard_kb_screenshots.py [host] [wizard] [kb]
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import argparse, asyncio, logging, os, tempfile
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

which = sys.argv[1:] or ["host", "wizard", "kb"]

async def pause(s): await asyncio.sleep(s)

async def host_shot():
    from hitl_desktop.app.host_window import HostWindowApp
    from hitl_desktop.client.connection import HostConnection
    from hitl_desktop.core.links import InviteLink
    from hitl_desktop.core.protocol import ChatSend
    paths = resolve_paths().ensure()
    args = argparse.Namespace(bind="0.0.0.0", port=8765, public_host=None, tls_cert=None, tls_key=None,
                              no_discovery=False, provider="offline", model=None)
    app = HostWindowApp(paths, Settings(provider="offline"), args)
    w = await app.start()
    w.resize(1180, 820)
    conns = []
    for cid, title, msg in (("CUST1001", "Order question", "Help me cancel order ORD1001"),
                            ("CUST1002", "Refund", "Where is my refund for ORD1010?"),
                            ("CUST1004", "Shipping", None)):
        created = app.host.create_session(customer_id=cid, title=title)
        if msg:
            c = HostConnection(InviteLink.parse(created.customer_link.replace(app.host.public_host, "127.0.0.1")), client_name="shot")
            c.open(); await asyncio.wait_for(c.wait_connected(), 10)
            c.send(ChatSend(text=msg)); conns.append(c)
    await pause(3)
    w.grab().save(str(OUT / "host-window.png"))
    for c in conns: await c.aclose()
    await app.aclose()

async def wizard_shot():
    """The key page telling two failure classes apart, then a finished upload."""
    from tests.support.fake_vector_stores import FakeVectorStoreApi
    from hitl_desktop.ui.wizard import SetupWizard, PAGE_UPLOAD
    from PySide6.QtWidgets import QWizard
    paths = resolve_paths().ensure()
    key = "sk-demo-key-0123456789"
    async with FakeVectorStoreApi(api_key=key, polls_until_done=2) as api:
        os.environ["OPENAI_BASE_URL"] = api.base_url
        api.models.append("gpt-4.1")
        for name, setup in (("wizard-key-no-access.png", lambda: api.responses.no_access.add("gpt-5")),
                            ("wizard-key-unverified.png", lambda: setattr(api.responses, "verified_org", False))):
            api.responses.no_access.clear(); api.responses.verified_org = True
            setup()
            wz = SetupWizard(paths); wz.resize(860, 640)
            wz.show(); wz.next()
            wz.key_page.key.setText(key); wz.key_page.combo.setCurrentText("gpt-5")
            wz.key_page.check.click()
            while "Checking" in wz.key_page.status_text() or not wz.key_page.check.isEnabled():
                await pause(0.05)
            await pause(0.5)
            wz.grab().save(str(OUT / name))
            wz.reject(); wz.deleteLater()
        api.responses.no_access.clear(); api.responses.verified_org = True
        wz = SetupWizard(paths); wz.resize(860, 640)
        wz.show(); wz.next()
        wz.key_page.key.setText(key); wz.key_page.check.click()
        while not wz.key_page.isComplete(): await pause(0.05)
        wz.next(); wz.upload_page.poll_interval = 0.05; wz.next()
        assert wz.currentId() == PAGE_UPLOAD
        while not wz.button(QWizard.WizardButton.NextButton).isEnabled(): await pause(0.05)
        await pause(0.5)
        wz.upload_page.table.scrollToTop()
        wz.grab().save(str(OUT / "wizard-upload.png"))
        wz.next(); await pause(0.5)
        wz.grab().save(str(OUT / "wizard-summary.png"))
        wz.reject()

async def kb_shot():
    from hitl_desktop.knowledge.articles import default_knowledge_dir
    from hitl_desktop.knowledge.index import KnowledgeIndex
    from hitl_desktop.ui.kb_browser import KbBrowserWindow, LocalKbSource
    idx = KnowledgeIndex.open(default_knowledge_dir(), tmp / "idx.sqlite3")
    win = KbBrowserWindow(LocalKbSource(idx)); win.resize(1120, 720); win.show()
    b = win.browser
    b.query.setText("refund"); b.search_now()
    while "faq/refunds" not in b.listed_ids(): await pause(0.05)
    b.results.setCurrentRow(b.listed_ids().index("faq/refunds"))
    while b.current is None: await pause(0.05)
    await pause(0.5)
    win.grab().save(str(OUT / "kb-browser.png"))
    win.close(); idx.close()

async def main():
    for name in which:
        await {"host": host_shot, "wizard": wizard_shot, "kb": kb_shot}[name]()
    return 0

sys.exit(run_qt(main))
