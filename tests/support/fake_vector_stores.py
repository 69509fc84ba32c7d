"""A local fake of the OpenAI files, models and vector-store endpoints.

Why: the wizard and the vector-store service are tested through the real
``openai.AsyncOpenAI(base_url=...)`` without the internet. Objects are built and
validated with the SDK's own types, uploads are real multipart bodies, requests
the real API would reject (bad key, bad purpose, unknown parameters, too many or
too long attributes, unknown ids) are rejected with the real error shape, and a
vector-store file goes ``in_progress`` -> ``completed`` after a poll or two.
Every call is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from openai.types import FileDeleted, FileObject, Model, VectorStore, VectorStoreDeleted
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileDeleted

from tests.support.fake_openai import MISSING_SCOPE_MESSAGE, FakeOpenAI, Reply

ALLOWED_PURPOSES = {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}


@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass
class StoredFile:
    obj: dict[str, Any]
    content: bytes


@dataclass
class StoredVsFile:
    obj: dict[str, Any]
    polls_left: int


@dataclass
class FakeVectorStoreApi:
    """Run with ``async with FakeVectorStoreApi() as api: api.base_url``."""

    api_key: str = "sk-test-key"
    models: list[str] = field(
        default_factory=lambda: ["gpt-5-mini", "gpt-5", "gpt-4.1-mini", "text-embedding-3-small"]
    )
    polls_until_done: int = 1
    fail_filenames: set[str] = field(default_factory=set)
    upload_delay: float = 0.0
    calls: list[Call] = field(default_factory=list)
    files: dict[str, StoredFile] = field(default_factory=dict)
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    store_files: dict[str, dict[str, StoredVsFile]] = field(default_factory=dict)

    models_read: bool = True  # False: a restricted key without Models:Read (403 on /models)

    def __post_init__(self) -> None:
        # /v1/responses (the wizard's tiny test call, the host's drafts) is the strict fake
        # Responses API, sharing this fake's key, models and vector stores
        self.responses = FakeOpenAI(api_key=self.api_key, models=self.models,
                                    vector_stores=self.stores)
        self.responses.responder = lambda body: Reply(text="OK")
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        # hold every upload after the first ``hold_uploads_after`` until ``release_uploads``
        self.hold_uploads_after: int | None = None
        self.upload_held = asyncio.Event()
        self._release = asyncio.Event()
        self._uploads = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeVectorStoreApi:
        app = web.Application(middlewares=[self._auth], client_max_size=600 * 1024 * 1024)
        r = app.router
        r.add_get("/v1/models", self._list_models)
        r.add_post("/v1/responses", self._responses)
        r.add_get("/v1/models/{model}", self._get_model)
        r.add_post("/v1/files", self._create_file)
        r.add_get("/v1/files/{file_id}", self._get_file)
        r.add_delete("/v1/files/{file_id}", self._delete_file)
        r.add_post("/v1/vector_stores", self._create_store)
        r.add_get("/v1/vector_stores/{vs}", self._get_store)
        r.add_delete("/v1/vector_stores/{vs}", self._delete_store)
        r.add_post("/v1/vector_stores/{vs}/files", self._attach)
        r.add_get("/v1/vector_stores/{vs}/files", self._list_vs_files)
        r.add_get("/v1/vector_stores/{vs}/files/{file_id}", self._get_vs_file)
        r.add_delete("/v1/vector_stores/{vs}/files/{file_id}", self._detach)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ helpers

    def _id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids):06d}"

    def release_uploads(self) -> None:
        self.hold_uploads_after = None
        self._release.set()

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    def uploaded_filenames(self) -> list[str]:
        return [str(c.body["filename"]) for c in self.calls_to("POST", "/v1/files") if c.body]

    def attached(self, store_id: str) -> dict[str, dict[str, Any]]:
        """file id -> vector-store file object, for one store."""
        return {k: v.obj for k, v in self.store_files.get(store_id, {}).items()}

    @staticmethod
    def _error(status: int, message: str, type_: str = "invalid_request_error",
               param: str | None = None, code: str | None = None) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": type_, "param": param, "code": code}},
            status=status,
        )

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ")
            shown = f"{shown[:3]}***{shown[-4:]}" if len(shown) > 8 else "***"
            self.calls.append(Call(request.method, request.path, {"rejected": "auth"}))
            return self._error(
                401, f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.", code="invalid_api_key",
            )
        return await handler(request)  # type: ignore[no-any-return]

    async def _json(self, request: web.Request, allowed: set[str]) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self._error(400, "Invalid body: expected an object.")
        unknown = sorted(set(body) - allowed)
        if unknown:
            return self._error(400, f"Unrecognized request argument supplied: {unknown[0]}",
                               param=unknown[0], code="unknown_parameter")
        self.calls.append(Call(request.method, request.path, body))
        return body

    # ------------------------------------------------------------------ models

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call("POST", request.path))
        return await self.responses.handle_responses(request)

    async def _list_models(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path))
        if not self.models_read:
            return self._error(403, MISSING_SCOPE_MESSAGE)
        data = [
            Model(id=m, created=1_700_000_000, object="model", owned_by="system").model_dump()
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _get_model(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path))
        m = request.match_info["model"]
        if m not in self.models:
            return self._error(404, f"The model '{m}' does not exist or you do not have access "
                               "to it.", code="model_not_found")
        return web.json_response(
            Model(id=m, created=1_700_000_000, object="model", owned_by="system").model_dump()
        )

    # ------------------------------------------------------------------ files

    async def _create_file(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/form-data"):
            return self._error(400, "Expected multipart/form-data.")
        reader = await request.multipart()
        purpose: str | None = None
        filename: str | None = None
        content = b""
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            if part.name == "purpose":
                purpose = (await part.read()).decode()
            elif part.name == "file":
                filename = part.filename
                content = bytes(await part.read())
            else:
                return self._error(400, f"Unrecognized request argument supplied: {part.name}")
        self.calls.append(Call("POST", request.path,
                               {"purpose": purpose, "filename": filename, "bytes": len(content)}))
        if purpose not in ALLOWED_PURPOSES:
            return self._error(400, f"'{purpose}' is not one of {sorted(ALLOWED_PURPOSES)} - "
                               "'purpose'", param="purpose")
        if not filename:
            return self._error(400, "Missing required parameter: 'file'.", param="file")
        if not content:
            return self._error(400, "File is empty.", param="file")
        self._uploads += 1
        if self.hold_uploads_after is not None and self._uploads > self.hold_uploads_after:
            self.upload_held.set()
            await self._release.wait()
        if self.upload_delay:
            await asyncio.sleep(self.upload_delay)
        fid = self._id("file")
        obj = FileObject(
            id=fid, bytes=len(content), created_at=int(time.time()), filename=filename,
            object="file", purpose=purpose, status="processed",
        ).model_dump(mode="json")
        self.files[fid] = StoredFile(obj, content)
        return web.json_response(obj)

    async def _get_file(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path))
        f = self.files.get(request.match_info["file_id"])
        if f is None:
            return self._error(404, f"No such File object: {request.match_info['file_id']}",
                               param="id")
        return web.json_response(f.obj)

    async def _delete_file(self, request: web.Request) -> web.Response:
        self.calls.append(Call("DELETE", request.path))
        fid = request.match_info["file_id"]
        if self.files.pop(fid, None) is None:
            return self._error(404, f"No such File object: {fid}", param="id")
        return web.json_response(FileDeleted(id=fid, deleted=True, object="file").model_dump())

    # ------------------------------------------------------------------ vector stores

    def _store_obj(self, vs: str) -> dict[str, Any]:
        store = self.stores[vs]
        files = self.store_files.get(vs, {})
        counts = {"cancelled": 0, "completed": 0, "failed": 0, "in_progress": 0}
        for f in files.values():
            counts[f.obj["status"]] += 1
        store["file_counts"] = {**counts, "total": len(files)}
        store["status"] = "in_progress" if counts["in_progress"] else "completed"
        store["usage_bytes"] = sum(int(f.obj["usage_bytes"]) for f in files.values())
        return VectorStore.model_validate(store).model_dump(mode="json")

    async def _create_store(self, request: web.Request) -> web.Response:
        body = await self._json(request, {"name", "metadata", "file_ids", "expires_after",
                                          "chunking_strategy", "description"})
        if isinstance(body, web.Response):
            return body
        vs = self._id("vs")
        self.stores[vs] = {
            "id": vs, "object": "vector_store", "created_at": int(time.time()),
            "name": body.get("name") or "", "metadata": body.get("metadata") or {},
            "status": "completed", "usage_bytes": 0, "last_active_at": int(time.time()),
            "file_counts": {}, "expires_after": None, "expires_at": None,
        }
        self.store_files[vs] = {}
        return web.json_response(self._store_obj(vs))

    def _missing_store(self, vs: str) -> web.Response:
        return self._error(404, f"No vector store found with id '{vs}'.")

    async def _get_store(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path))
        vs = request.match_info["vs"]
        if vs not in self.stores:
            return self._missing_store(vs)
        return web.json_response(self._store_obj(vs))

    async def _delete_store(self, request: web.Request) -> web.Response:
        self.calls.append(Call("DELETE", request.path))
        vs = request.match_info["vs"]
        if self.stores.pop(vs, None) is None:
            return self._missing_store(vs)
        self.store_files.pop(vs, None)
        return web.json_response(
            VectorStoreDeleted(id=vs, deleted=True, object="vector_store.deleted").model_dump()
        )

    async def _attach(self, request: web.Request) -> web.Response:
        vs = request.match_info["vs"]
        body = await self._json(request, {"file_id", "attributes", "chunking_strategy"})
        if isinstance(body, web.Response):
            return body
        if vs not in self.stores:
            return self._missing_store(vs)
        fid = body.get("file_id")
        if not isinstance(fid, str):
            return self._error(400, "Missing required parameter: 'file_id'.", param="file_id")
        if fid not in self.files:
            return self._error(404, f"No file found with id '{fid}'.", param="file_id")
        attrs = body.get("attributes")
        if attrs is not None:
            problem = _check_attributes(attrs)
            if problem:
                return self._error(400, problem, param="attributes")
        stored = self.files[fid]
        failed = stored.obj["filename"] in self.fail_filenames
        obj = {
            "id": fid, "object": "vector_store.file", "created_at": int(time.time()),
            "vector_store_id": vs, "status": "in_progress", "usage_bytes": 0,
            "last_error": None, "attributes": attrs,
            "chunking_strategy": {"type": "static", "static": {
                "max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}},
        }
        VectorStoreFile.model_validate(obj)
        self.store_files[vs][fid] = StoredVsFile(obj, -1 if failed else self.polls_until_done)
        return web.json_response(obj)

    def _advance(self, f: StoredVsFile) -> None:
        if f.obj["status"] != "in_progress":
            return
        if f.polls_left < 0:
            f.obj["status"] = "failed"
            f.obj["last_error"] = {"code": "unsupported_file",
                                   "message": "The file could not be parsed."}
        elif f.polls_left == 0:
            f.obj["status"] = "completed"
            f.obj["usage_bytes"] = len(self.files[f.obj["id"]].content) \
                if f.obj["id"] in self.files else 0
        else:
            f.polls_left -= 1

    async def _get_vs_file(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path))
        vs, fid = request.match_info["vs"], request.match_info["file_id"]
        if vs not in self.stores:
            return self._missing_store(vs)
        f = self.store_files[vs].get(fid)
        if f is None:
            return self._error(404, f"No file found with id '{fid}' in vector store '{vs}'.")
        self._advance(f)
        return web.json_response(VectorStoreFile.model_validate(f.obj).model_dump(mode="json"))

    async def _list_vs_files(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path, dict(request.query)))
        vs = request.match_info["vs"]
        if vs not in self.stores:
            return self._missing_store(vs)
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return self._error(400, "Invalid 'limit': expected an integer.", param="limit")
        if not 1 <= limit <= 100:
            return self._error(400, "Invalid 'limit': must be between 1 and 100.", param="limit")
        items = list(self.store_files[vs].values())
        if request.query.get("order", "desc") == "desc":
            items.reverse()
        flt = request.query.get("filter")
        if flt:
            items = [i for i in items if i.obj["status"] == flt]
        after = request.query.get("after")
        if after:
            ids = [i.obj["id"] for i in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:limit]
        data = [VectorStoreFile.model_validate(i.obj).model_dump(mode="json") for i in page]
        return web.json_response({
            "object": "list", "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(items) > limit,
        })

    async def _detach(self, request: web.Request) -> web.Response:
        self.calls.append(Call("DELETE", request.path))
        vs, fid = request.match_info["vs"], request.match_info["file_id"]
        if vs not in self.stores:
            return self._missing_store(vs)
        if self.store_files[vs].pop(fid, None) is None:
            return self._error(404, f"No file found with id '{fid}' in vector store '{vs}'.")
        return web.json_response(VectorStoreFileDeleted(
            id=fid, deleted=True, object="vector_store.file.deleted").model_dump())


def _check_attributes(attrs: Any) -> str | None:
    """The real API's limits: 16 keys, keys <= 64 chars, strings <= 512 chars."""
    if not isinstance(attrs, dict):
        return "Invalid type for 'attributes': expected an object."
    if len(attrs) > 16:
        return "Invalid 'attributes': too many properties (max 16)."
    for k, v in attrs.items():
        if len(k) > 64:
            return f"Invalid 'attributes': key '{k[:20]}...' is longer than 64 characters."
        if isinstance(v, str):
            if len(v) > 512:
                return f"Invalid 'attributes.{k}': string longer than 512 characters."
        elif not isinstance(v, bool | int | float):
            return f"Invalid type for 'attributes.{k}': expected a string, number or boolean."
    return None
