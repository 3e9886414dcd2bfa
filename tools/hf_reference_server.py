#!/usr/bin/env python3
"""A small, independent reference implementation of the Hugging Face Hub's download protocol.

It serves repositories from a folder so a hub client (Osprey's, or the official ``huggingface_hub``) can be
checked against a server it was not written with. Standard library only.

Layout of --root::

    ROOT/models/{org}/{name}/{revision}/...files
    ROOT/datasets/{org}/{name}/{revision}/...files

A revision folder's name is a branch (or tag) name such as ``main``; a name holding ``%2F`` stands for a ``/``
(``refs%2Fpr%2F1`` is the revision ``refs/pr/1``). Each (repo, revision) gets a deterministic 40-hex commit sha
computed from its files, and that sha is accepted as a revision too.

Endpoints (what huggingface_hub uses to download):

* ``GET /api/{models|datasets}/{org}/{name}`` and ``.../revision/{rev}``: repo info JSON with ``id``, ``sha``,
  ``siblings`` [{rfilename}] (with ``size``, ``blobId`` and ``lfs`` {sha256, size, pointerSize} when
  ``?blobs=true``).
* ``GET /api/{models|datasets}/{org}/{name}/tree/{rev}[/{path}]`` (``?recursive=true``): file and folder entries.
* ``GET /api/{models|datasets}/{org}/{name}/refs``: branches.
* ``HEAD|GET /{org}/{name}/resolve/{rev}/{path}`` and ``/datasets/{org}/{name}/resolve/...``: regular files
  come back directly (``ETag`` = quoted git blob sha1, ``Content-Length``, ``Accept-Ranges``, Range -> 206);
  LFS files (bigger than --lfs_threshold, or named *.safetensors / *.bin) get a 302 to an absolute
  ``/lfs-blobs/{sha256}`` URL on --cdn_host (the "CDN", another host) with ``X-Linked-Etag`` (quoted sha256) and ``X-Linked-Size``. Every resolve answer,
  404s of missing files included, carries ``X-Repo-Commit``.
* ``HEAD|GET /lfs-blobs/{sha256}``: the "CDN" (on --cdn_host, 127.0.0.2 by default: another host; the main port serves it too), with Range support.

Errors carry ``X-Error-Code`` / ``X-Error-Message`` as the hub sends them: ``RepoNotFound`` (401 without a
token, 404 with one), ``RevisionNotFound`` (404), ``EntryNotFound`` (404), ``GatedRepo`` (401 without the right
token, 403 with a wrong one; repo info stays public for gated repos, file content does not).

The first stdout line is ``listening on http://127.0.0.1:{port}``. Each request is logged, one tab-separated
line ``METHOD PATH RANGE STATUS`` (written when the status is sent, before any body), to stderr or --log FILE.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin")
CHUNK = 64 * 1024
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(data: bytes) -> str:
    h = hashlib.sha1()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class RepoFile:
    path: str  # repository path, forward slashes
    disk: str  # where the bytes are
    size: int
    git_sha1: str  # git blob id of the content as stored in git (the pointer for LFS files)
    sha256: str
    lfs: bool
    pointer_size: int = 0


@dataclass
class Revision:
    name: str
    sha: str
    files: dict[str, RepoFile] = field(default_factory=dict)


@dataclass
class Repo:
    repo_type: str  # "model" or "dataset"
    repo_id: str
    revisions: dict[str, Revision] = field(default_factory=dict)  # by ref name
    by_sha: dict[str, Revision] = field(default_factory=dict)


class HubStore:
    def __init__(self, root: str, lfs_threshold: int):
        self.root = root
        self.lfs_threshold = lfs_threshold
        self.lock = threading.Lock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, str] = {}  # sha256 -> disk path (LFS "CDN")
        self.scan()

    def scan(self) -> None:
        repos: dict[tuple[str, str], Repo] = {}
        blobs: dict[str, str] = {}
        for folder, repo_type in (("models", "model"), ("datasets", "dataset")):
            base = os.path.join(self.root, folder)
            if not os.path.isdir(base):
                continue
            for org in sorted(os.listdir(base)):
                for name in sorted(os.listdir(os.path.join(base, org))) if os.path.isdir(os.path.join(base, org)) else []:
                    repo_dir = os.path.join(base, org, name)
                    if not os.path.isdir(repo_dir):
                        continue
                    repo = Repo(repo_type, f"{org}/{name}")
                    for rev_folder in sorted(os.listdir(repo_dir)):
                        rev_dir = os.path.join(repo_dir, rev_folder)
                        if os.path.isdir(rev_dir):
                            rev = self._load_revision(repo, unquote(rev_folder), rev_dir, blobs)
                            repo.revisions[rev.name] = rev
                            repo.by_sha[rev.sha] = rev
                    repos[(repo_type, repo.repo_id)] = repo
        with self.lock:
            self.repos, self.blobs = repos, blobs

    def _load_revision(self, repo: Repo, name: str, rev_dir: str, blobs: dict[str, str]) -> Revision:
        files: dict[str, RepoFile] = {}
        for dirpath, dirnames, filenames in os.walk(rev_dir):
            dirnames.sort()
            for fn in sorted(filenames):
                disk = os.path.join(dirpath, fn)
                rel = os.path.relpath(disk, rev_dir).replace(os.sep, "/")
                with open(disk, "rb") as f:
                    data = f.read()
                sha256 = hashlib.sha256(data).hexdigest()
                is_lfs = len(data) > self.lfs_threshold or fn.endswith(LFS_SUFFIXES)
                if is_lfs:
                    pointer = lfs_pointer(sha256, len(data))
                    rf = RepoFile(rel, disk, len(data), git_blob_sha1(pointer), sha256, True, len(pointer))
                    blobs[sha256] = disk
                else:
                    rf = RepoFile(rel, disk, len(data), git_blob_sha1(data), sha256, False)
                files[rel] = rf
        h = hashlib.sha1()
        h.update(f"osprey-reference-commit\0{repo.repo_type}\0{repo.repo_id}\0".encode())
        for rel in sorted(files):
            h.update(f"{rel}\0{files[rel].git_sha1}\n".encode())
        return Revision(name, h.hexdigest(), files)

    def repo(self, repo_type: str, repo_id: str) -> Repo | None:
        with self.lock:
            r = self.repos.get((repo_type, repo_id))
        if r is None:  # repos added after start-up become visible
            self.scan()
            with self.lock:
                r = self.repos.get((repo_type, repo_id))
        return r

    def blob(self, sha256: str) -> str | None:
        with self.lock:
            return self.blobs.get(sha256)


def find_revision(repo: Repo, rev: str) -> Revision | None:
    return repo.revisions.get(rev) or repo.by_sha.get(rev.lower() if SHA_RE.match(rev.lower()) else "")


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OspreyHubReference/1.0"
    # set on the class by main()
    store: HubStore
    token: str | None = None
    gated: frozenset = frozenset()
    private: frozenset = frozenset()
    truncate_first: bool = False
    cdn_port: int = 0
    cdn_host: str = "127.0.0.2"
    log_file = None
    log_lock = threading.Lock()
    truncated: set = set()
    truncated_lock = threading.Lock()

    # ---- logging -------------------------------------------------------------------------------------
    def log_message(self, format, *args):  # silence the default access log
        pass

    def _log(self, status: int) -> None:
        line = f"{self.command}\t{self.path}\t{self.headers.get('Range') or '-'}\t{status}\n"
        with Handler.log_lock:
            out = Handler.log_file or sys.stderr
            out.write(line)
            out.flush()

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self._log(status)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    # ---- auth ----------------------------------------------------------------------------------------
    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return None

    def _authorized(self) -> bool:
        return Handler.token is not None and self._bearer() == Handler.token

    def _check_token(self) -> None:
        sent = self._bearer()
        if sent is not None and Handler.token is not None and sent != Handler.token:
            raise HubError(401, None, "Invalid credentials in Authorization header")

    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        self._check_token()
        repo = Handler.store.repo(repo_type, repo_id)
        if repo is None or (repo_id in Handler.private and not self._authorized()):
            # like the hub: 401 for anonymous callers, 404 for authenticated ones
            status = 404 if self._bearer() is not None and repo is None else 401
            raise HubError(status, "RepoNotFound", "Repository not found")
        return repo

    def _check_gated(self, repo: Repo) -> None:
        if repo.repo_id in Handler.gated and not self._authorized():
            kind = "model" if repo.repo_type == "model" else "dataset"
            if self._bearer() is None:
                raise HubError(401, "GatedRepo", f"Access to {kind} {repo.repo_id} is restricted. You must have access "
                               "to it and be authenticated to access it. Please log in.")
            raise HubError(403, "GatedRepo", f"Access to {kind} {repo.repo_id} is restricted and you are not in the "
                           "authorized list. Visit the repo page to ask for access.")

    # ---- dispatch ------------------------------------------------------------------------------------
    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def _dispatch(self, head: bool) -> None:
        commit = None
        try:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            raw = [s for s in url.path.split("/") if s != ""]
            segs = [unquote(s) for s in raw]
            if len(segs) >= 2 and segs[0] == "lfs-blobs":
                return self._serve_blob(segs[1], head)
            if len(segs) >= 4 and segs[0] == "api" and segs[1] in ("models", "datasets"):
                repo_type = "model" if segs[1] == "models" else "dataset"
                return self._api(repo_type, f"{segs[2]}/{segs[3]}", segs[4:], query, head)
            repo_type = "model"
            if segs and segs[0] == "datasets":
                repo_type, segs = "dataset", segs[1:]
            if len(segs) >= 4 and segs[2] == "resolve":
                return self._resolve(repo_type, f"{segs[0]}/{segs[1]}", segs[3:], head)
            raise HubError(404, None, "Not found")
        except HubError as e:
            self._error(e, head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, e: HubError, head: bool) -> None:
        body = json.dumps({"error": e.message}).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": e.message,
                   "Content-Length": str(len(body))}
        if e.code:
            headers["X-Error-Code"] = e.code
        if e.commit:
            headers["X-Repo-Commit"] = e.commit
        self._start(e.status, headers)
        if not head:
            self.wfile.write(body)

    def _json(self, obj, head: bool) -> None:
        body = json.dumps(obj).encode()
        self._start(200, {"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body))})
        if not head:
            self.wfile.write(body)

    # ---- /api ----------------------------------------------------------------------------------------
    def _api(self, repo_type: str, repo_id: str, rest: list[str], query: dict, head: bool) -> None:
        repo = self._get_repo(repo_type, repo_id)
        flag = lambda k: (query.get(k, ["false"])[-1]).lower() in ("1", "true", "yes")
        if not rest or rest[0] == "revision":
            rev_name = "/".join(rest[1:]) if rest else "main"
            rev = find_revision(repo, rev_name)
            if rev is None:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev_name}")
            return self._json(self._info(repo, rev, flag("blobs")), head)
        if rest[0] == "tree" and len(rest) >= 2:
            rev, path = self._split_revision(repo, rest[1:])
            return self._json(self._tree(rev, path, flag("recursive"), flag("expand")), head)
        if rest[0] == "refs" and len(rest) == 1:
            branches = [{"name": r.name, "ref": f"refs/heads/{r.name}", "targetCommit": r.sha}
                        for r in repo.revisions.values()]
            return self._json({"branches": branches, "converts": [], "tags": []}, head)
        raise HubError(404, None, "Not found")

    def _info(self, repo: Repo, rev: Revision, blobs: bool) -> dict:
        siblings = []
        for rf in sorted(rev.files.values(), key=lambda f: f.path):
            s: dict = {"rfilename": rf.path}
            if blobs:
                s["size"] = rf.size
                s["blobId"] = rf.git_sha1
                if rf.lfs:
                    s["lfs"] = {"sha256": rf.sha256, "size": rf.size, "pointerSize": rf.pointer_size}
            siblings.append(s)
        org = repo.repo_id.split("/")[0]
        info = {
            "_id": rev.sha[:24], "id": repo.repo_id, "author": org, "sha": rev.sha,
            "lastModified": "2024-01-01T00:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
            "private": repo.repo_id in Handler.private,
            "gated": "auto" if repo.repo_id in Handler.gated else False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        return info

    def _tree(self, rev: Revision, path: str, recursive: bool, expand: bool) -> list:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in rev.files):
            raise HubError(404, "EntryNotFound", f"{path} does not exist on \"{rev.name}\"", rev.sha)
        entries, dirs = [], set()
        for rf in sorted(rev.files.values(), key=lambda f: f.path):
            if not rf.path.startswith(prefix):
                continue
            rel = rf.path[len(prefix):]
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if (recursive or i == 1) and d not in dirs:
                    dirs.add(d)
                    entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d})
            if len(parts) > 1 and not recursive:
                continue
            e: dict = {"type": "file", "oid": rf.git_sha1, "size": rf.size, "path": rf.path}
            if rf.lfs:
                e["lfs"] = {"oid": rf.sha256, "size": rf.size, "pointerSize": rf.pointer_size}
            entries.append(e)
        return entries

    # ---- /resolve ------------------------------------------------------------------------------------
    def _split_revision(self, repo: Repo, segs: list[str]) -> tuple[Revision, str]:
        """Splits 'rev/path...' where the revision may itself hold slashes (refs/pr/1, sent unencoded)."""
        joined = "/".join(segs)
        best = None
        for name in list(repo.revisions) + list(repo.by_sha):
            if joined == name or joined.startswith(name + "/"):
                if best is None or len(name) > len(best):
                    best = name
        if best is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {segs[0]}")
        return find_revision(repo, best), joined[len(best) + 1:]

    def _resolve(self, repo_type: str, repo_id: str, segs: list[str], head: bool) -> None:
        repo = self._get_repo(repo_type, repo_id)
        rev, path = self._split_revision(repo, segs)
        self._check_gated(repo)
        rf = rev.files.get(path)
        if rf is None:
            raise HubError(404, "EntryNotFound", "Entry not found", rev.sha)
        if rf.lfs:
            # The "CDN" listens on its own port: a different origin, as the real CDN is a different host
            # (huggingface_hub follows same-origin redirects on HEAD, and would then miss X-Repo-Commit).
            location = f"http://{Handler.cdn_host}:{Handler.cdn_port}/lfs-blobs/{rf.sha256}?name={quote(path.split('/')[-1])}"
            body = f"Found. Redirecting to {location}".encode()
            self._start(302, {
                "Location": location, "X-Repo-Commit": rev.sha, "ETag": f'"{rf.git_sha1}"',
                "X-Linked-Etag": f'"{rf.sha256}"', "X-Linked-Size": str(rf.size), "Accept-Ranges": "bytes",
                "Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)),
            })
            if not head:
                self.wfile.write(body)
            return
        self._send_file(rf.disk, rf.size, {"X-Repo-Commit": rev.sha, "ETag": f'"{rf.git_sha1}"'}, head, None)

    def _serve_blob(self, sha256: str, head: bool) -> None:
        disk = Handler.store.blob(sha256.lower())
        if disk is None:
            raise HubError(404, None, "Blob not found")
        self._send_file(disk, os.path.getsize(disk), {"ETag": f'"{sha256.lower()}"'}, head, sha256.lower())

    def _send_file(self, disk: str, size: int, extra: dict, head: bool, truncate_key: str | None) -> None:
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if not m or (m.group(1) == "" and m.group(2) == ""):
                raise HubError(416, None, f"Invalid range: {rng}")
            if m.group(1) == "":  # suffix range: the last N bytes
                start, end = max(0, size - int(m.group(2))), size - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size or start > end:
                body = b""
                self._start(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0", **extra})
                return
            status = 206
        length = end - start + 1 if size > 0 else 0
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length),
                   "Accept-Ranges": "bytes", **extra}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        cut = None
        if truncate_key and Handler.truncate_first and not head and length > 1:
            with Handler.truncated_lock:
                if truncate_key not in Handler.truncated:
                    Handler.truncated.add(truncate_key)
                    cut = length // 2
        self._start(status, headers)
        if head:
            return
        with open(disk, "rb") as f:
            f.seek(start)
            left = length if cut is None else cut
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        if cut is not None:  # promise `length` bytes, send half, drop the connection
            self.wfile.flush()
            self.close_connection = True
            try:
                import socket
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="folder with models/{org}/{name}/{rev}/ and datasets/...")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--token", default=None, help="the one token the server accepts")
    ap.add_argument("--gated", default="", help="comma-separated repo ids whose files need --token")
    ap.add_argument("--private", default="", help="comma-separated repo ids invisible without --token")
    ap.add_argument("--lfs_threshold", type=int, default=1024, help="files larger than this (bytes) are LFS files")
    ap.add_argument("--truncate_first", action="store_true",
                    help="cut the first GET of each LFS blob halfway (tests resume with Range)")
    ap.add_argument("--cdn_host", default="127.0.0.2",
                    help="where LFS blobs are served: another host than --host, as huggingface_hub follows "
                         "redirects to the hub's own host on HEAD (any 127.x address is loopback on Linux)")
    ap.add_argument("--log", default=None, help="append the request log here instead of stderr")
    args = ap.parse_args(argv)

    Handler.store = HubStore(os.path.abspath(args.root), args.lfs_threshold)
    Handler.token = args.token
    Handler.gated = frozenset(x.strip() for x in args.gated.split(",") if x.strip())
    Handler.private = frozenset(x.strip() for x in args.private.split(",") if x.strip())
    Handler.truncate_first = args.truncate_first
    if args.log:
        Handler.log_file = open(args.log, "a", encoding="utf-8")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    Handler.cdn_host = args.cdn_host
    cdn = ThreadingHTTPServer((args.cdn_host, 0), Handler)  # serves the LFS blobs the hub redirects to
    cdn.daemon_threads = True
    Handler.cdn_port = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
