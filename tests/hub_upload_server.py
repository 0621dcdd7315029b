"""A local stand-in for the Hugging Face Hub's upload API that commits into the git repositories olah serves.

It answers what huggingface_hub 2.4's `create_repo`, `create_branch` and `upload_folder` send (read from
its hf_api.py and _commit_api.py), so that a push in a test goes through the real client:

    POST /api/repos/create                           {"name", "organization", "visibility"}: {"url"}, 409 if it exists
    GET  /api/models/{org}/{name}[/revision/{rev}]   repo_info (create_repo asks it after a 401/403 with exist_ok)
    GET  /api/whoami-v2                              the token's user and role (`hf auth login` checks the token)
    POST /api/validate-yaml                          {"content"}: the README's front matter must be YAML
    POST /api/models/{org}/{name}/branch/{branch}    {"startingPoint"}: a git branch, 409 if it exists
    POST /api/models/{org}/{name}/preupload/{rev}    every file "regular": its bytes come inline in the commit
                                                     (the Hub's "lfs" answer would send them through Xet)
    POST /api/models/{org}/{name}/commit/{rev}       NDJSON: a header, then base64 "file" entries: a git commit

A commit is a real commit on the branch of the non-bare repository `LocalHub` keeps for olah (files the
repository's .gitattributes marks for LFS stored as LFS pointers, as on the Hub), so what a test pushes
it downloads through olah. Any other request gets 404 naming it, so a new call of the client fails a
test instead of passing unseen. With `tokens` set, each request needs `Authorization: Bearer <token>`:
an unknown token gets the Hub's 401, a token whose role is "read" gets 403 on every write.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from hubrepos import LocalHub

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/branch/(?P<rev>[^/]+)$"), "create_branch"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
]
_WRITES = {"create_repo", "create_branch", "preupload", "commit"}


class HubReply(Exception):
    """An error answer: status, message (as the Hub's X-Error-Message), error code, more fields of the body."""

    def __init__(self, status: int, message: str, code: str | None = None, **fields: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.fields = status, message, code, fields


@dataclass
class Commit:
    """A commit the server wrote."""

    repo: str
    revision: str
    summary: str
    files: list[str]
    sha: str


@dataclass
class UploadServer:
    """The upload API on a free loopback port, committing into `hub`'s repositories."""

    hub: LocalHub
    tokens: dict[str, str] = field(default_factory=dict)  # token -> "write" | "read"; empty: no check
    commits: list[Commit] = field(default_factory=list)
    created: dict[str, dict[str, Any]] = field(default_factory=dict)  # repo -> the create_repo payload
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        """Serve on a free loopback port from a daemon thread."""
        handler = type("Handler", (_Handler,), {"upload": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- the endpoints (each returns the JSON answer or raises HubReply) -----------------------
    def handle(self, name: str, match: re.Match, body: bytes, authorization: str | None) -> Any:
        token = self._authorize(authorization, write=name in _WRITES)
        if name == "whoami":  # what `hf auth login` asks before it saves a token
            role = self.tokens.get(token or "", "write")
            return {"type": "user", "name": "zoo-tests", "auth": {"accessToken": {"displayName": f"zoo-tests-{role}", "role": role}}}
        args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
        with self._lock:
            return getattr(self, f"_{name}")(body=body, **args)

    def _authorize(self, authorization: str | None, write: bool) -> str | None:
        """The request's token, when the server checks tokens and this one may do the request."""
        if not self.tokens:
            return None
        token = (authorization or "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise HubReply(401, "Invalid credentials in Authorization header")
        if write and self.tokens[token] != "write":
            raise HubReply(403, "You don't have the rights to write to this repository: the token is read-only")
        return token

    def _create_repo(self, body: bytes) -> Any:
        payload = json.loads(body)
        repo = f"{payload['organization']}/{payload['name']}"
        if self._exists(repo):
            raise HubReply(409, "You already created this model repo", url=f"{self.endpoint}/{repo}")
        self.hub.commit(repo, {}, message="initial commit")  # the Hub's first commit: .gitattributes
        self.created[repo] = payload
        return {"url": f"{self.endpoint}/{repo}", "name": repo}

    def _repo_info(self, body: bytes, repo: str, rev: str = "main") -> Any:
        return {"id": repo, "modelId": repo, "sha": self._head(repo, rev), "private": False, "siblings": []}

    def _validate_yaml(self, body: bytes) -> Any:
        """The Hub's checks that matter here: YAML, a mapping, `model-index` a list of {name, results}."""
        text = json.loads(body)["content"]
        errors = []
        try:
            front = yaml.safe_load(text[4:].split("\n---", 1)[0]) if text.startswith("---\n") else {}
        except yaml.YAMLError as exc:
            front, errors = {}, [f"invalid YAML: {exc}"]
        index = (front or {}).get("model-index", []) if isinstance(front, dict) else None
        if front is not None and not isinstance(front, dict):
            errors.append("the metadata must be a YAML mapping")
        elif not isinstance(index, list) or not all(isinstance(e, dict) and {"name", "results"} <= set(e) for e in index):
            errors.append('"model-index" must be an array of objects with "name" and "results"')
        if errors:
            raise HubReply(400, "Invalid metadata in README.md", errors=[{"message": e} for e in errors])
        return {"errors": [], "warnings": []}

    def _create_branch(self, body: bytes, repo: str, rev: str) -> Any:
        start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
        head = self._head(repo, start)
        if _git(self.hub.repo_dir(repo), "branch", "--list", rev).strip():
            raise HubReply(409, f"Reference already exists: refs/heads/{rev}")
        _git(self.hub.repo_dir(repo), "branch", rev, head)
        return {}

    def _preupload(self, body: bytes, repo: str, rev: str) -> Any:
        head = self._head(repo, rev)
        files = json.loads(body)["files"]
        return {
            "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": self._oid(repo, head, f["path"])}
                for f in files
            ]
        }

    def _commit(self, body: bytes, repo: str, rev: str) -> Any:
        self._head(repo, rev)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubReply(400, "the commit payload must start with a header")
        files: dict[str, bytes] = {}
        for line in lines[1:]:
            if line.get("key") != "file" or line["value"].get("encoding") != "base64":
                raise HubReply(400, f"this test server takes base64 'file' entries only, not {line.get('key')!r}")
            path = line["value"]["path"]
            if path.startswith("/") or ".." in path.split("/") or path.startswith(".git/"):
                raise HubReply(400, f"invalid path {path!r}")
            files[path] = base64.b64decode(line["value"]["content"])
        header = lines[0]["value"]
        message = header["summary"] + (f"\n\n{header['description']}" if header.get("description") else "")
        folder = self.hub.repo_dir(repo)
        _git(folder, "checkout", "-q", rev)
        sha = self.hub.commit(repo, files, lfs=tuple(n for n in files if self._lfs(folder, n)), message=message)
        self.commits.append(Commit(repo, rev, header["summary"], sorted(files), sha))
        return {"success": True, "commitOid": sha, "commitUrl": f"{self.endpoint}/{repo}/commit/{sha}", "hookOutput": ""}

    # -- the repositories ------------------------------------------------------------------------
    def _exists(self, repo: str) -> bool:
        return (self.hub.repo_dir(repo) / ".git").exists()

    def _head(self, repo: str, rev: str) -> str:
        if not self._exists(repo):
            raise HubReply(404, f"Repository {repo} not found", "RepoNotFound")
        try:
            return _git(self.hub.repo_dir(repo), "rev-parse", "--verify", "-q", f"{rev}^{{commit}}").strip()
        except subprocess.CalledProcessError:
            raise HubReply(404, f"Invalid rev id: {rev}", "RevisionNotFound") from None

    def _oid(self, repo: str, commit: str, path: str) -> str | None:
        """The git hash of the file's content at `commit` (the client skips a file whose own hash is
        the same); for a file stored as an LFS pointer, the hash of the object it points to."""
        folder = self.hub.repo_dir(repo)
        found = subprocess.run(["git", "cat-file", "blob", f"{commit}:{path}"], cwd=folder, capture_output=True)
        if found.returncode:
            return None
        data = found.stdout
        if data.startswith(b"version https://git-lfs"):
            oid = re.search(rb"oid sha256:([0-9a-f]{64})", data).group(1).decode()
            data = (folder / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).read_bytes()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    @staticmethod
    def _lfs(folder, name: str) -> bool:
        attributes = folder / ".gitattributes"
        patterns = [line.split()[0] for line in attributes.read_text().splitlines() if "filter=lfs" in line]
        return any(fnmatch.fnmatch(name, p) for p in patterns)


def _git(folder, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout


class _Handler(BaseHTTPRequestHandler):
    upload: UploadServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.upload.requests.append((method, path))
        for verb, pattern, name in _ROUTES:
            match = pattern.match(path)
            if verb == method and match:
                try:
                    self._answer(200, self.upload.handle(name, match, body, self.headers.get("Authorization")))
                except HubReply as exc:
                    self._answer(exc.status, {"error": exc.message, **exc.fields}, exc)
                except Exception as exc:  # a bug here: a 500 the test sees, not a dropped connection
                    self._answer(500, {"error": f"test upload server: {type(exc).__name__}: {exc}"})
                return
        self._answer(404, {"error": f"the test upload server does not implement {method} {path}"})

    def _answer(self, status: int, data: Any, error: HubReply | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if error is not None:
            self.send_header("X-Error-Message", error.message)
            if error.code:
                self.send_header("X-Error-Code", error.code)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in `UploadServer.requests`."""
