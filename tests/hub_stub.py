"""A small stand-in for the Hugging Face Hub HTTP API, served on loopback for tests.

It speaks the subset of the real API that ``huggingface_hub`` 2.4 uses for publishing and loading
models and Spaces (read from the installed client, ``hf_api.py`` / ``_commit_api.py`` / ``lfs.py`` /
``file_download.py``):

=======================================================  ==========================================
``POST /api/repos/create``                               ``HfApi.create_repo`` (409 when it exists)
``POST /api/validate-yaml``                              README.md front matter check in ``create_commit``
``GET  /api/{type}s/{ns}/{name}[/revision/{rev}]``       ``repo_info`` / ``model_info`` / revision -> sha
``GET  /api/{type}s/{ns}/{name}/tree/{rev}``             ``list_repo_tree`` / ``list_repo_files``
``GET  /api/{type}s/{ns}/{name}/refs``                   ``list_repo_refs``
``POST /api/{type}s/{ns}/{name}/branch/{branch}``        ``create_branch`` (409 when it exists)
``POST /api/{type}s/{ns}/{name}/preupload/{rev}``        upload mode per file: ``lfs`` or ``regular``
``POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch`` LFS batch API (basic transfer)
``PUT  /lfs-upload/{sha256}``                            the LFS object itself (checked against its sha256)
``POST /api/{type}s/{ns}/{name}/commit/{rev}``           NDJSON commit: header, file, lfsFile, deleted*
``POST /api/spaces/{ns}/{name}/variables``               ``add_space_variable``
``HEAD/GET /{prefix}{ns}/{name}/resolve/{rev}/{path}``   ``hf_hub_download`` / ``snapshot_download``
=======================================================  ==========================================

Every commit is stored whole (path -> bytes) under its SHA, branches point at commits, so tests can
check what a revision holds and that a failed push left the previous one untouched. Every request is
recorded (method, path, headers, body) so tests can prove where a token travelled. ``fail()`` scripts
errors: an HTTP status for the next N matching requests (or forever), or a dropped connection.

Xet storage is not spoken here: tests turn it off (``HF_HUB_DISABLE_XET``) so large files travel
through the plain LFS protocol, which this stub implements.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

# Built at run time so no token-shaped literal sits in the source (secret scanners would flag it).
CANARY_TOKEN = "hf_" + "canaryTOKEN0123456789abcdefDoNotLeak"

# Paths the real Hub's default .gitattributes sends to LFS (the subset a model folder produces).
LFS_SUFFIXES = (".safetensors", ".onnx", ".onnx_data", ".bin", ".pt", ".parquet", ".data")
REPO_TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
INITIAL_GITATTRIBUTES = (
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.onnx filter=lfs diff=lfs merge=lfs -text\n"
)
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
HEX_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class ScriptedFailure:
    method: str
    path_contains: str
    status: int | None  # None: drop the connection without answering
    remaining: int | None  # None: fail forever
    message: str = "scripted failure"
    after: bool = False  # True: carry the request out, then drop the answer (a response lost in transit)


@dataclass(frozen=True)
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def oid(self) -> str:
        """What the Hub reports as a file's oid: git blob sha1 (regular) or the LFS sha256."""
        return hashlib.sha256(self.content).hexdigest() if self.lfs else git_blob_sha1(self.content)


@dataclass
class StubCommit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, StoredFile]


@dataclass
class StubRepo:
    repo_id: str
    repo_type: str
    private: bool
    sdk: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, StubCommit] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resolve(self, revision: str) -> StubCommit | None:
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if HEX_SHA1.match(revision):
            return self.commits.get(revision)
        return None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def error(cls, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        extra = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}
        return cls.json({"error": message}, status, extra)


class HubStub:
    """The fake Hub; ``with HubStub() as hub:`` serves it on ``hub.endpoint`` (127.0.0.1, free port)."""

    def __init__(self, valid_tokens: tuple[str, ...] = (CANARY_TOKEN,)) -> None:
        self.valid_tokens = set(valid_tokens)
        self.repos: dict[tuple[str, str], StubRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[RecordedRequest] = []
        self.failures: list[ScriptedFailure] = []
        self._lock = threading.RLock()
        self._commit_counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> HubStub:
        stub = self

        class Handler(_StubRequestHandler):
            hub = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("HubStub is not running: use `with HubStub() as hub:`")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting and inspection for tests -------------------------------------------------------

    def fail(
        self,
        method: str,
        path_contains: str,
        status: int | None = 500,
        times: int | None = 1,
        message: str = "",
        *,
        after: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests (None: all of them) with ``status`` (None: hang up).

        ``after=True`` carries each matching request out first and then hangs up: the change lands on the
        Hub but the client never hears of it, as when a response is lost after the server committed.
        """
        with self._lock:
            self.failures.append(
                ScriptedFailure(
                    method.upper(), path_contains, status, times, message or f"scripted {status}", after=after
                )
            )

    def repo(self, repo_id: str, repo_type: str = "model") -> StubRepo:
        return self.repos[(repo_type, repo_id)]

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> str:
        return self.repo(repo_id, repo_type).branches[branch]

    def files_at(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        commit = self.repo(repo_id, repo_type).resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id} has no revision {revision}")
        return {path: stored.content for path, stored in commit.files.items()}

    def requests_matching(self, method: str, path_contains: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method.upper() and path_contains in r.path]

    # -- request handling -------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            scripted = self._scripted_failure(request, after=False)
            if scripted is not None:
                return scripted
            try:
                reply = self._route(request)
            except (ValueError, KeyError, json.JSONDecodeError) as error:
                return Reply.error(400, f"bad request: {error}")
            return self._scripted_failure(request, after=True) or reply

    def _scripted_failure(self, request: RecordedRequest, *, after: bool) -> Reply | None:
        for failure in self.failures:
            if failure.after != after:
                continue
            if failure.method != request.method or failure.path_contains not in request.path:
                continue
            if failure.remaining == 0:
                continue
            if failure.remaining is not None:
                failure.remaining -= 1
            if failure.status is None:
                return Reply(drop=True)
            retry_after = {"Retry-After": "0"} if failure.status == 429 else {}
            return Reply.error(failure.status, failure.message, headers=retry_after)
        return None

    def _authorized(self, request: RecordedRequest) -> bool:
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and header.removeprefix("Bearer ") in self.valid_tokens

    def _route(self, request: RecordedRequest) -> Reply:
        method, path = request.method, request.path
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(request)
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(request)
        if method == "PUT" and path.startswith("/lfs-upload/"):
            return self._lfs_upload(path.removeprefix("/lfs-upload/"), request.body)
        api = re.match(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(.*))?$", path)
        if api:
            repo_type = api.group(1)[:-1]
            repo_id = f"{unquote(api.group(2))}/{unquote(api.group(3))}"
            return self._repo_api(request, repo_type, repo_id, api.group(4) or "")
        batch = re.match(r"^/(datasets/|spaces/)?([^/]+)/([^/]+)\.git/info/lfs/objects/batch$", path)
        if batch and method == "POST":
            return self._lfs_batch(request)
        resolve = re.match(r"^/(datasets/|spaces/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$", path)
        if resolve and method in ("GET", "HEAD"):
            repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(resolve.group(1) or "", "model")
            repo_id = f"{resolve.group(2)}/{resolve.group(3)}"
            return self._resolve_file(request, repo_type, repo_id, unquote(resolve.group(4)), unquote(resolve.group(5)))
        return Reply.error(404, f"stub has no route for {method} {path}")

    def _repo_api(self, request: RecordedRequest, repo_type: str, repo_id: str, rest: str) -> Reply:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            return Reply.error(404, "Repository not found", "RepoNotFound")
        if repo.private and not self._authorized(request):
            return Reply.error(404, "Repository not found", "RepoNotFound")
        method = request.method
        parts = rest.split("/") if rest else []
        if method == "GET" and not parts:
            return self._info(repo, "main")
        if method == "GET" and parts[0] == "revision" and len(parts) == 2:
            return self._info(repo, unquote(parts[1]))
        if method == "GET" and parts[0] == "tree" and len(parts) >= 2:
            return self._tree(repo, unquote(parts[1]), unquote("/".join(parts[2:])))
        if method == "GET" and parts[0] == "commits" and len(parts) == 2:
            return self._commits(repo, unquote(parts[1]))
        if method == "GET" and parts == ["refs"]:
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha} for name, sha in repo.branches.items()
            ]
            return Reply.json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})
        if method != "POST":
            return Reply.error(405, f"stub does not support {method} {request.path}")
        if not self._authorized(request):
            return Reply.error(401, "Invalid credentials in Authorization header")
        if parts[0] == "preupload" and len(parts) == 2:
            return self._preupload(repo, unquote(parts[1]), request)
        if parts[0] == "commit" and len(parts) == 2:
            return self._commit(repo, unquote(parts[1]), request)
        if parts[0] == "branch" and len(parts) == 2:
            return self._create_branch(repo, unquote(parts[1]), request)
        if parts == ["variables"] and repo_type == "space":
            payload = json.loads(request.body)
            repo.variables[payload["key"]] = {
                "value": payload["value"],
                "description": payload.get("description"),
                "updatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            }
            return Reply.json(repo.variables)
        return Reply.error(404, f"stub has no route for {method} {request.path}")

    # -- endpoints --------------------------------------------------------------------------------

    def _create_repo(self, request: RecordedRequest) -> Reply:
        if not self._authorized(request):
            return Reply.error(401, "Invalid credentials in Authorization header")
        payload = json.loads(request.body)
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = f"{self.endpoint}/{REPO_TYPE_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            # Like the real Hub, the conflict answer still carries the repo URL (create_repo(exist_ok=True) reads it).
            return Reply.json({"error": "You already created this repo", "url": url}, status=409)
        if repo_type == "space" and not payload.get("sdk"):
            return Reply.error(400, "a Space needs an sdk")
        repo = StubRepo(repo_id, repo_type, payload.get("visibility") == "private", payload.get("sdk"))
        # The real Hub starts every repo with one commit holding .gitattributes.
        gitattributes = {".gitattributes": StoredFile(INITIAL_GITATTRIBUTES, False)}
        initial = self._new_commit(repo, None, "initial commit", gitattributes)
        repo.branches["main"] = initial.sha
        self.repos[(repo_type, repo_id)] = repo
        return Reply.json({"url": url, "name": repo_id})

    def _validate_yaml(self, request: RecordedRequest) -> Reply:
        content = json.loads(request.body)["content"]
        if content.startswith("---"):
            front_matter = content.split("---", 2)[1]
            try:
                yaml.safe_load(front_matter)
            except yaml.YAMLError as error:
                return Reply.json({"errors": [{"message": str(error)}], "warnings": []}, status=400)
        return Reply.json({"errors": [], "warnings": []})

    def _info(self, repo: StubRepo, revision: str) -> Reply:
        commit = repo.resolve(revision)
        if commit is None:
            return Reply.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return Reply.json(
            {
                "id": repo.repo_id,
                "sha": commit.sha,
                "private": repo.private,
                "sdk": repo.sdk,
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }
        )

    def _commits(self, repo: StubRepo, revision: str) -> Reply:
        """The history of ``revision``, newest first, in the fields ``HfApi.list_repo_commits`` reads."""
        commit = repo.resolve(revision)
        if commit is None:
            return Reply.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        history = []
        while commit is not None:
            title, _, message = commit.message.partition("\n")
            history.append(
                {
                    "id": commit.sha,
                    "authors": [{"user": "stub"}],
                    "date": "2026-01-01T00:00:00.000Z",
                    "title": title,
                    "message": message,
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return Reply.json(history)

    def _tree(self, repo: StubRepo, revision: str, folder: str) -> Reply:
        commit = repo.resolve(revision)
        if commit is None:
            return Reply.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path, stored in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parents = Path(path).parents
            folders.update(str(parent) for parent in parents if str(parent) not in (".", prefix.rstrip("/")))
            entry: dict[str, Any] = {"type": "file", "path": path, "size": len(stored.content), "oid": stored.oid}
            if stored.lfs:
                pointer = LFS_POINTER.format(oid=stored.oid, size=len(stored.content))
                entry["oid"] = git_blob_sha1(pointer.encode())
                entry["lfs"] = {"oid": stored.oid, "size": len(stored.content), "pointerSize": len(pointer)}
            entries.append(entry)
        entries += [{"type": "directory", "path": name, "oid": "0" * 40} for name in sorted(folders)]
        return Reply.json(entries)

    def _create_branch(self, repo: StubRepo, branch: str, request: RecordedRequest) -> Reply:
        if branch in repo.branches:
            return Reply.error(409, f"Reference refs/heads/{branch} already exists")
        payload = json.loads(request.body or b"{}")
        start = repo.resolve(payload.get("startingPoint") or "main")
        if start is None:
            return Reply.error(404, "Invalid starting point", "RevisionNotFound")
        repo.branches[branch] = start.sha
        return Reply.json({})

    def _preupload(self, repo: StubRepo, revision: str, request: RecordedRequest) -> Reply:
        commit = repo.resolve(revision)
        if commit is None:
            return Reply.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        answers = []
        for item in json.loads(request.body)["files"]:
            path = item["path"]
            existing = commit.files.get(path)
            answers.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if path.endswith(LFS_SUFFIXES) else "regular",
                    "shouldIgnore": False,
                    "oid": existing.oid if existing is not None else None,
                }
            )
        return Reply.json({"files": answers})

    def _lfs_batch(self, request: RecordedRequest) -> Reply:
        if not self._authorized(request):
            return Reply.error(401, "Invalid credentials in Authorization header")
        payload = json.loads(request.body)
        objects = []
        for item in payload["objects"]:
            answer: dict[str, Any] = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.lfs_objects:
                answer["actions"] = {"upload": {"href": f"{self.endpoint}/lfs-upload/{item['oid']}"}}
            objects.append(answer)
        return Reply.json({"transfer": "basic", "objects": objects})

    def _lfs_upload(self, oid: str, body: bytes) -> Reply:
        if hashlib.sha256(body).hexdigest() != oid:
            return Reply.error(400, "LFS object does not match its sha256")
        self.lfs_objects[oid] = body
        return Reply()

    def _commit(self, repo: StubRepo, revision: str, request: RecordedRequest) -> Reply:
        if revision not in repo.branches:
            return Reply.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        lines = [json.loads(line) for line in request.body.decode().splitlines() if line.strip()]
        header = lines[0]
        if header.get("key") != "header":
            return Reply.error(400, "the first NDJSON line must be the commit header")
        parent = repo.commits[repo.branches[revision]]
        expected_parent = header["value"].get("parentCommit")
        if expected_parent and not parent.sha.startswith(expected_parent):
            return Reply.error(412, "A commit has happened since. Please refresh and try again.")
        files = dict(parent.files)
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = StoredFile(base64.b64decode(value["content"]), False)
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.lfs_objects:
                    return Reply.error(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = StoredFile(self.lfs_objects[value["oid"]], True)
            elif line["key"] == "deletedFile":
                if value["path"] not in files:
                    return Reply.error(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif line["key"] == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: stored for path, stored in files.items() if not path.startswith(prefix)}
            else:
                return Reply.error(400, f"unknown commit operation {line['key']!r}")
        commit = self._new_commit(repo, parent.sha, header["value"]["summary"], files)
        repo.branches[revision] = commit.sha
        url = f"{self.endpoint}/{REPO_TYPE_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}"
        return Reply.json({"commitUrl": url, "commitOid": commit.sha, "success": True, "pullRequestUrl": None})

    def _new_commit(self, repo: StubRepo, parent: str | None, message: str, files: dict[str, StoredFile]) -> StubCommit:
        self._commit_counter += 1
        fingerprint = json.dumps(
            [self._commit_counter, parent, message, sorted((path, f.oid) for path, f in files.items())]
        )
        sha = hashlib.sha1(fingerprint.encode(), usedforsecurity=False).hexdigest()
        commit = StubCommit(sha, parent, message, files)
        repo.commits[sha] = commit
        return commit

    def _resolve_file(self, request: RecordedRequest, repo_type: str, repo_id: str, revision: str, path: str) -> Reply:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized(request)):
            return Reply.error(404, "Repository not found", "RepoNotFound")
        commit = repo.resolve(revision)
        if commit is None:
            return Reply.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        stored = commit.files.get(path)
        if stored is None:
            return Reply.error(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.sha})
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{stored.oid}"', "Content-Type": "application/octet-stream"}
        if stored.lfs:
            headers["X-Linked-Etag"] = f'"{stored.oid}"'
            headers["X-Linked-Size"] = str(len(stored.content))
        return Reply(200, stored.content, headers)


class _StubRequestHandler(BaseHTTPRequestHandler):
    hub: HubStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr access log
        return

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
        )
        reply = self.hub.handle(request)
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    # http.server dispatches on these names.
    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815


def connect_hub_client(stub: HubStub, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> HubStub:
    """Point huggingface_hub (env AND the constants it read at import) at ``stub``, online, token set.

    The cache goes to ``cache_dir`` so tests never write into the shared offline mirror.
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", stub.endpoint)
    monkeypatch.setenv("HF_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setattr(constants, "ENDPOINT", stub.endpoint)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", stub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    # Keep any login token file on this machine out of the tests.
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache_dir / "no-token-file"))
    return stub
