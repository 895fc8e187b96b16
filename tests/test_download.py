"""download(): against a real HTTP server on 127.0.0.1 that cuts, stalls, corrupts and refuses."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from topogen.io.downloads import DownloadError, download

pytestmark = pytest.mark.timeout(10)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"timeout": 0.5, "backoff": 0.01, "progress": False}


@dataclass
class Server:
    """What the handler serves per path, and every request it saw."""

    base: str = ""
    modes: dict[str, str] = field(default_factory=dict)  # path -> behaviour
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    # (path, Range, If-Range) of every request
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def seen(self, path: str) -> list[str | None]:
        return [rng for p, rng, _ in self.requests if p == path]


def make_handler(state: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng, self.headers.get("If-Range")))
            mode = state.modes.get(self.path, "ok")
            first = len(state.seen(self.path)) == 1
            if mode == "404":
                self.send_error(404)
            elif mode == "503" or (mode == "503-once" and first):
                self.send_error(503)
            elif mode == "cut-once" and first:
                self._headers(200, len(PAYLOAD))
                self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            elif mode == "stall-once" and first:
                self._headers(200, len(PAYLOAD))
                self.wfile.write(PAYLOAD[: len(PAYLOAD) // 4])
                self.wfile.flush()
                state.stop.wait(3.0)  # far longer than the client's timeout
            elif mode == "corrupt":
                body = bytearray(PAYLOAD)
                body[1000] ^= 0xFF
                self._body(bytes(body), None)
            elif mode == "no-range":
                self._body(PAYLOAD, None)
            else:
                self._body(PAYLOAD, rng)

        def _headers(self, code: int, length: int, extra: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", '"v1"')
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()

        def _body(self, body: bytes, rng: str | None) -> None:
            start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
            if start:
                crange = f"bytes {start}-{len(body) - 1}/{len(body)}"
                self._headers(206, len(body) - start, {"Content-Range": crange})
            else:
                self._headers(200, len(body))
            with contextlib.suppress(OSError):  # the client may have gone
                self.wfile.write(body[start:])

    return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.stop.set()
    httpd.shutdown()
    httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_plain_download(server, tmp_path):
    out = tmp_path / "sub" / "data.bin"
    res = download(server.url("/data.bin"), out, sha256=DIGEST, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert (res.size, res.sha256, res.attempts, res.resumed) == (len(PAYLOAD), DIGEST, 1, False)
    assert res.path == out and res.url.endswith("/data.bin") and res.date.endswith("+00:00")
    assert res.as_dict()["path"] == str(out)
    assert leftovers(out.parent) == []


def test_cut_connection_resumes_with_range(server, tmp_path):
    server.modes["/cut"] = "cut-once"
    out = tmp_path / "cut.bin"
    res = download(server.url("/cut"), out, sha256=DIGEST, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert res.attempts == 2 and res.resumed
    assert server.seen("/cut") == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert server.requests[-1][2] == '"v1"'  # If-Range: the ETag of the first answer
    assert leftovers(tmp_path) == []


def test_stalled_server_times_out_and_retries(server, tmp_path):
    server.modes["/stall"] = "stall-once"
    out = tmp_path / "stall.bin"
    t0 = time.monotonic()
    res = download(server.url("/stall"), out, sha256=DIGEST, **FAST)
    assert time.monotonic() - t0 < 2.5
    assert out.read_bytes() == PAYLOAD
    assert res.attempts == 2 and res.resumed
    assert server.seen("/stall")[1] == f"bytes={len(PAYLOAD) // 4}-"


def test_leftover_part_from_an_earlier_call_is_resumed(server, tmp_path):
    out = tmp_path / "again.bin"
    (tmp_path / ".again.bin.part").write_bytes(PAYLOAD[:1000])
    res = download(server.url("/again.bin"), out, sha256=DIGEST, **FAST)
    assert out.read_bytes() == PAYLOAD and res.resumed and res.attempts == 1
    assert server.seen("/again.bin") == ["bytes=1000-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.modes["/norange"] = "no-range"
    out = tmp_path / "norange.bin"
    (tmp_path / ".norange.bin.part").write_bytes(b"stale junk")
    res = download(server.url("/norange"), out, sha256=DIGEST, **FAST)
    assert out.read_bytes() == PAYLOAD and not res.resumed
    assert server.seen("/norange") == ["bytes=10-"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.modes["/bad"] = "corrupt"
    out = tmp_path / "bad.bin"
    with pytest.raises(DownloadError) as err:
        download(server.url("/bad"), out, sha256=DIGEST, source="c2db", **FAST)
    msg = str(err.value)
    actual = hashlib.sha256(PAYLOAD[:1000] + bytes([PAYLOAD[1000] ^ 0xFF]) + PAYLOAD[1001:])
    assert DIGEST in msg and actual.hexdigest() in msg and msg.startswith("c2db: ")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", ["abc", DIGEST[:-1] + "g", DIGEST + "0"])
def test_malformed_checksum_fails_before_downloading(server, tmp_path, bad):
    out = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="is not 64 hexadecimal digits"):
        download(server.url("/early"), out, sha256=bad, source="c2db", **FAST)
    assert server.seen("/early") == [] and not tmp_path.joinpath("data.bin").exists()


def test_404_fails_at_once(server, tmp_path):
    server.modes["/missing"] = "404"
    out = tmp_path / "missing.bin"
    with pytest.raises(DownloadError, match="404") as err:
        download(server.url("/missing"), out, source="mp", config_key="data.mp.path", **FAST)
    assert len(server.seen("/missing")) == 1
    assert "data.mp.path" in str(err.value) and "\n" not in str(err.value)
    assert not out.exists() and leftovers(tmp_path) == []


def test_transient_503_is_retried(server, tmp_path):
    server.modes["/busy"] = "503-once"
    res = download(server.url("/busy"), tmp_path / "busy.bin", **FAST)
    assert res.attempts == 2 and not res.resumed and res.sha256 == DIGEST


def test_persistent_503_gives_up_after_retries(server, tmp_path):
    server.modes["/down"] = "503"
    with pytest.raises(DownloadError, match=r"HTTP 503 .* after 3 attempts") as err:
        download(server.url("/down"), tmp_path / "d.bin", retries=2, source="qm9", **FAST)
    assert len(server.seen("/down")) == 3 and str(err.value).startswith("qm9: ")


def test_unreachable_host_names_source_and_config_key(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "c2db.json"
    with pytest.raises(DownloadError) as err:
        download(
            f"http://127.0.0.1:{port}/c2db.json",
            out,
            retries=1,
            source="c2db",
            config_key="data.c2db.path",
            **FAST,
        )
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("c2db: cannot reach 127.0.0.1 (Connection refused)")
    assert msg.endswith("set data.c2db.path in the config to a local copy")
    assert not out.exists()


def test_progress_lines_are_throttled(server, tmp_path, capsys):
    download(server.url("/p.bin"), tmp_path / "p.bin", timeout=2, source="tqc")
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 11  # 16 chunks of 64 KiB, at most one line per 10%
    assert all(line.startswith("tqc: ") for line in lines)
    assert "1.0 MB of 1.0 MB (100%)" in lines[-1]


@pytest.mark.parametrize("as_url", [True, False])
def test_local_copy(tmp_path, as_url):
    src = tmp_path / "local.bin"
    src.write_bytes(PAYLOAD)
    out = tmp_path / "copy" / "local.bin"
    res = download(src.as_uri() if as_url else str(src), out, sha256=DIGEST, progress=False)
    assert out.read_bytes() == PAYLOAD and res.sha256 == DIGEST


def test_local_copy_mismatch_and_missing(tmp_path):
    src = tmp_path / "local.bin"
    src.write_bytes(b"not it")
    out = tmp_path / "out" / "local.bin"
    with pytest.raises(DownloadError, match=f"expected {DIGEST}"):
        download(str(src), out, sha256=DIGEST)
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(DownloadError, match=r"^c2db: local copy .* does not exist; set data\.c2"):
        download(str(tmp_path / "nope"), out, source="c2db", config_key="data.c2db.path")


@pytest.mark.timeout(60)
def test_cli_download_records_provenance(cli, server, tmp_path):
    out = tmp_path / "raw" / "file.bin"
    res = cli(
        "download",
        "--url",
        server.url("/f"),
        "--out",
        out,
        "--sha256",
        DIGEST,
        "--timeout",
        "5",
        "-q",
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads(Path(f"{out}.prov.json").read_text())
    assert manifest["extra"]["url"] == server.url("/f")
    assert manifest["extra"]["sha256"] == DIGEST == manifest["sha256"]
    assert manifest["extra"]["size"] == len(PAYLOAD) and manifest["extra"]["date"]


@pytest.mark.timeout(60)
def test_cli_corrupted_download_exits_1_and_leaves_nothing(cli, server, tmp_path):
    server.modes["/c"] = "corrupt"
    out = tmp_path / "file.bin"
    res = cli("download", "--url", server.url("/c"), "--out", out, "--sha256", DIGEST, "-q")
    assert res.returncode == 1 and "checksum mismatch" in res.stderr and DIGEST in res.stderr
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.timeout(60)
def test_cli_unreachable_host_is_one_line(cli, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cli(
        "download",
        "--url",
        f"http://127.0.0.1:{port}/c2db.db",
        "--out",
        tmp_path / "x",
        "--retries",
        "1",
        "--source",
        "c2db",
        "--config-key",
        "data.c2db.url",
    )
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("topogen: error: c2db: cannot reach 127.0.0.1")
    assert line.endswith("set data.c2db.url in the config to a local copy")
