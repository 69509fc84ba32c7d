"""The setup wizard end to end: real widgets, real openai client, local fake API."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QWizard

from hitl_desktop import secrets
from hitl_desktop.app.setup import needs_setup
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.knowledge.articles import default_knowledge_dir, load_articles
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.ui.wizard import (
    PAGE_FOLDER,
    PAGE_KEY,
    PAGE_OFFLINE,
    PAGE_SUMMARY,
    PAGE_UPLOAD,
    SetupWizard,
    index_path,
)
from tests.support.fake_vector_stores import FakeVectorStoreApi
from tests.ui.conftest import until

KEY = "sk-test-wizard-0123456789"
# the offscreen platform cannot resize native windows; QWizard asks on every page change
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


@pytest.fixture(autouse=True)
def keep_app_running(qapp: QApplication) -> Iterator[None]:
    """Closing a window must not quit the app (and stop the loop the test runs on)."""
    qapp.setQuitOnLastWindowClosed(False)
    yield
    gc.collect()  # Qt objects in cycles die here, on the GUI thread, not on a worker


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    src = default_knowledge_dir()
    dst = tmp_path / "kb-copy"
    for kind in ("kb", "faq"):
        (dst / kind).mkdir(parents=True)
        for p in sorted((src / kind).glob("*.md"))[:3]:
            shutil.copy(p, dst / kind / p.name)
    return dst


async def finish(wizard: SetupWizard) -> None:
    """Press Finish and wait until the settings are saved and the wizard closed."""
    wizard.button(QWizard.WizardButton.FinishButton).click()
    await until(lambda: wizard.result() == 1 and not wizard.isVisible(), what="finish")


async def _check_key(wizard: SetupWizard, key: str | None, model: str = "gpt-5") -> None:
    """Welcome -> key page; the key and model checked for real."""
    wizard.show()
    assert wizard.currentId() == 0
    wizard.next()
    assert wizard.currentId() == PAGE_KEY
    page = wizard.key_page
    if key is not None:
        page.key.setText(key)
    else:  # the stored key is looked up off the loop, then offered
        await until(lambda: "already configured" in page.status_text(), what="stored key")
    page.combo.setCurrentText(model)
    assert not page.isComplete()
    page.check.click()
    await until(page.isComplete, what="key check")


async def _to_upload(wizard: SetupWizard, kb: Path, key: str | None) -> None:
    """Welcome -> key and model (checked for real) -> folder -> upload page."""
    await _check_key(wizard, key)
    page = wizard.key_page
    assert "works" in page.status_text()
    assert page.combo.findText("gpt-5-mini") >= 0
    assert page.combo.findText("text-embedding-3-small") < 0
    wizard.next()
    assert wizard.currentId() == PAGE_FOLDER
    wizard.folder_page.path.setText(str(kb))
    assert wizard.folder_page.isComplete()
    wizard.upload_page.poll_interval = 0.01
    wizard.next()
    assert wizard.currentId() == PAGE_UPLOAD


async def test_wizard_uploads_the_folder_and_resyncs_only_a_changed_file(
    qtbot: object, kb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = resolve_paths().ensure()
    assert needs_setup(paths)
    articles = load_articles(kb)
    async with FakeVectorStoreApi(api_key=KEY, polls_until_done=2) as api:
        monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)

        wizard = SetupWizard(paths)
        await _to_upload(wizard, kb, KEY)
        up = wizard.upload_page
        await until(up.isComplete, what="upload")
        # the bug of issue 13: Next stayed disabled after every article was uploaded
        await until(wizard.button(QWizard.WizardButton.NextButton).isEnabled, within=2,
                    what="Next enabled after the upload")
        assert up.bar.value() == 1000
        assert up.table.rowCount() == len(articles)
        assert {up.status_of(a.article_id) for a in articles} == {"done"}
        # the tiny test call used the chosen model, streamed, through the strict fake
        (probe,) = api.responses.responses_requests()
        assert probe.body["model"] == "gpt-5" and probe.body["stream"] is True
        assert probe.status == 200

        # the fake saw one store and every article attached with its attributes
        (store_id,) = api.stores
        attached = api.attached(store_id).values()
        assert sorted(o["attributes"]["article_id"] for o in attached) == sorted(
            a.article_id for a in articles)
        assert all(set(o["attributes"]) == {"article_id", "kind", "slug", "title", "path"}
                   for o in attached)

        wizard.next()
        assert wizard.currentId() == PAGE_SUMMARY
        summary = wizard.summary_page
        assert store_id in summary.plain_text()
        assert "hitl-desktop" in summary.plain_text() and " host" in summary.plain_text()
        # no keyring backend in tests: the 0600 file fallback, said plainly
        await until(lambda: "No system keyring" in summary.plain_text(), what="key place")
        # nothing saved before Finish
        assert not paths.settings_file.exists()
        assert secrets.load_api_key(paths) is None
        await finish(wizard)

        saved = Settings.load(paths)
        assert saved.vector_store_id == store_id
        assert saved.model == "gpt-5" and saved.provider == "openai"
        assert saved.knowledge_dir == str(kb)  # tmp_path is already resolved
        assert secrets.load_api_key(paths) == KEY
        if os.name == "posix":
            assert stat.S_IMODE(secrets.key_file(paths).stat().st_mode) == 0o600
        assert not needs_setup(paths)

        # change one article, run the wizard again: only that file is uploaded
        changed = articles[2]
        changed.path.write_text(changed.path.read_text("utf-8") + "\nUpdated.\n", "utf-8")
        api.calls.clear()
        again = SetupWizard(paths)
        await _to_upload(again, kb, None)  # the stored key is offered and re-checked
        await until(again.upload_page.isComplete, what="re-sync")
        assert api.uploaded_filenames() == [f"{changed.slug}.md"]
        assert again.upload_page.status_of(changed.article_id) == "done"
        assert {again.upload_page.status_of(a.article_id) for a in articles
                if a is not changed} == {"unchanged"}
        assert list(api.stores) == [store_id]
        assert len(api.attached(store_id)) == len(articles)
        again.next()
        await finish(again)
        wizard.deleteLater()
        again.deleteLater()


async def test_wizard_cancel_and_resume(qtbot: object, kb: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    paths = resolve_paths().ensure()
    async with FakeVectorStoreApi(api_key=KEY) as api:
        monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
        api.hold_uploads_after = 2
        wizard = SetupWizard(paths)
        await _to_upload(wizard, kb, KEY)
        up = wizard.upload_page
        await until(api.upload_held.is_set, what="an upload in flight")
        ids = [a.article_id for a in load_articles(kb)]
        await until(lambda: [up.status_of(i) for i in ids].count("done") == 2, what="2 done")
        up.cancel.click()
        await until(up.resume.isEnabled, what="cancelled")
        assert not up.isComplete()
        assert "Cancelled" in up.summary.text()
        assert "cancelled" in {up.status_of(a.article_id) for a in load_articles(kb)}

        api.release_uploads()
        api.calls.clear()
        up.resume.click()
        await until(up.isComplete, what="resumed upload")
        statuses = {up.status_of(a.article_id) for a in load_articles(kb)}
        assert statuses <= {"done", "unchanged"} and "unchanged" in statuses
        assert len(api.uploaded_filenames()) == len(load_articles(kb)) - 2
        wizard.reject()
        wizard.deleteLater()


@pytest.mark.parametrize("failure, words, usable", [
    ("wrong_key", ["did not accept this key", "api-keys"], False),
    ("no_quota", ["no credit left", "billing"], False),
    ("no_access", ["not allowed to use gpt-5", "Use gpt-5-mini"], False),
    ("unverified", ["verified organisations", "all at once", "organization/general",
                    "Use gpt-4.1-mini"], True),
    ("restricted", ["may not list models", "works"], True),
])
async def test_key_page_reports_each_failure_in_plain_words(
        qtbot: object, monkeypatch: pytest.MonkeyPatch, failure: str, words: list[str],
        usable: bool) -> None:
    paths = resolve_paths().ensure()
    async with FakeVectorStoreApi(api_key=KEY) as api:
        monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
        key = KEY
        if failure == "wrong_key":
            key = "sk-wrong-0000000000"
        elif failure == "no_quota":
            api.responses.quota_left = False
        elif failure == "no_access":
            api.responses.no_access.add("gpt-5")
        elif failure == "unverified":
            api.responses.verified_org = False
            api.models.append("gpt-4.1")  # also listed; gpt-4.1-mini is offered first
        elif failure == "restricted":
            api.models_read = False
        wizard = SetupWizard(paths)
        wizard.show()
        wizard.next()
        page = wizard.key_page
        page.key.setText(key)
        page.combo.setCurrentText("gpt-5")
        page.check.click()
        await until(lambda: page.check.isEnabled() and page.status_text()
                    and "Checking" not in page.status_text(), what="check done")
        shown = page.status_text() + " " + (page.use_alternative.text()
                                            if page.use_alternative.isVisible() else "")
        for word in words:
            assert word in shown, (word, shown)
        assert page.isComplete() is usable
        assert page.status_text().startswith("✗") is not usable
        assert secrets.load_api_key(paths) is None and not paths.settings_file.exists()
        if page.use_alternative.isVisible():  # the offered model is taken without a new call
            calls = len(api.responses.responses_requests())
            page.use_alternative.click()
            assert page.isComplete() and page.model() != "gpt-5"
            assert len(api.responses.responses_requests()) == calls
        wizard.reject()
        wizard.deleteLater()


async def test_key_page_points_to_the_offline_assistant(qtbot: object, kb: Path) -> None:
    paths = resolve_paths().ensure()
    wizard = SetupWizard(paths)
    wizard.show()
    wizard.next()
    assert wizard.currentId() == PAGE_KEY
    assert "offline assistant" in wizard.key_page.offline_hint.text()
    wizard.key_page.go_offline.click()
    assert wizard.currentId() == PAGE_FOLDER and wizard.state.offline
    wizard.folder_page.path.setText(str(kb))
    wizard.next()
    await until(wizard.offline_page.isComplete, what="index build")
    wizard.next()
    assert wizard.currentId() == PAGE_SUMMARY
    await finish(wizard)
    assert Settings.load(paths).provider == "offline"
    wizard.deleteLater()


async def test_offline_path_builds_the_index_without_a_key(qtbot: object, kb: Path) -> None:
    paths = resolve_paths().ensure()
    wizard = SetupWizard(paths, offline=True)
    wizard.show()
    wizard.next()
    assert wizard.currentId() == PAGE_FOLDER
    wizard.folder_page.path.setText(str(kb))
    wizard.next()
    assert wizard.currentId() == PAGE_OFFLINE
    await until(wizard.offline_page.isComplete, what="index build")
    assert "Indexed 6 articles" in wizard.offline_page.status.text()
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()
    assert wizard.currentId() == PAGE_SUMMARY
    assert "offline" in wizard.summary_page.plain_text()
    assert wizard.button(QWizard.WizardButton.FinishButton).isVisible()
    assert not paths.settings_file.exists()  # nothing saved before Finish
    await finish(wizard)
    saved = Settings.load(paths)
    assert saved.provider == "offline" and saved.vector_store_id is None
    assert secrets.load_api_key(paths) is None

    def built() -> tuple[int, bool]:
        with KnowledgeIndex.open(kb, index_path(paths)) as index:
            return len(index), bool(index.search("cancel order"))

    assert await asyncio.to_thread(built) == (6, True)
    wizard.deleteLater()


async def test_a_pasted_key_says_to_check_it_and_enter_checks_it(
        qtbot: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under Xvfb (audit9) a pasted key left Next greyed out with no word why, and Enter
    did nothing: the page now says how to go on, and Enter in the key box checks it."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    paths = resolve_paths().ensure()
    async with FakeVectorStoreApi(api_key=KEY) as api:
        monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
        wizard = SetupWizard(paths)
        wizard.show()
        wizard.next()
        page = wizard.key_page
        page.combo.setCurrentText("gpt-5")
        QTest.keyClicks(page.key, KEY)
        assert not page.isComplete()
        assert "Check key" in page.status_text() and "Enter" in page.status_text()
        QTest.keyClick(page.key, Qt.Key.Key_Return)
        await until(page.isComplete, what="key checked by Enter")
        assert "works" in page.status_text()
        assert len(api.responses.responses_requests()) == 1
        assert wizard.currentId() == PAGE_KEY  # Enter checked; it did not also move on
        wizard.reject()
        wizard.deleteLater()
