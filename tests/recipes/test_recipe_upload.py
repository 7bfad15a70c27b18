"""Recipe: a Pahlavan presigned upload round trip (presign, PUT, commit, signed download)."""

import requests

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_upload_then_download(aigen_mock):
    presign = {"filename": "logo.png", "content_type": "image/png", "bytes": len(PNG), "path": "site/assets"}
    presigned = aigen_mock.post("pahlavan", "/api/v1/storage/presign", json=presign).json()

    # The upload URL carries its own signature: no API key, the headers the presign answer lists.
    upload = requests.put(presigned["upload_url"], data=PNG, headers=presigned["headers"], timeout=10)
    assert upload.status_code == 200
    assert aigen_mock.post("pahlavan", "/api/v1/storage/commit", json={"key": presigned["key"]}).ok

    signed = aigen_mock.post("pahlavan", "/api/v1/storage/sign-url", json={"key": presigned["key"]}).json()
    download = requests.get(signed["url"], timeout=10)
    assert download.content == PNG
    assert download.headers["Content-Type"] == "image/png"

    aigen_mock.advance(3601)  # signed URLs expire (default 1 hour) on the mock's clock
    assert requests.get(signed["url"], timeout=10).status_code == 403
