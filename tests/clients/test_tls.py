"""TLS both ways: an https upstream trusted through a configured CA file, and the mirror serving https.

The CA is made in the test; neither certificate is trusted by the system, so each pull proves the configured
trust was used, and the same requests without it must fail.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import MirrorFactory, UpstreamImages
from tests.support.mirror_host import Upstream
from tests.support.registry import RegistryServer
from tests.support.skopeo import mirror_dropin, skopeo_copy, unique_registry_name, verify_dir_blobs
from tests.support.tls import TestCA

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]


def test_https_upstream_with_a_configured_ca_and_a_mirror_serving_https(
    tmp_path: Path, upstream: UpstreamImages, mirror_factory: MirrorFactory
) -> None:
    ca = TestCA.create(tmp_path / "ca")
    upstream_cert = ca.issue(tmp_path / "upstream-cert")
    mirror_cert = ca.issue(tmp_path / "mirror-cert")
    tls_config = {
        "storage": {"filesystem": {"rootdirectory": str(upstream.registry.storage_dir)}},
        "http": {"tls": {"certificate": str(upstream_cert.cert_path), "key": str(upstream_cert.key_path)}},
    }
    name, untrusted = unique_registry_name("tls"), unique_registry_name("tls-untrusted")
    with RegistryServer(tmp_path / "https-registry", extra_config=tls_config) as https_registry:
        https_url = f"https://{https_registry.host}"
        mirror = mirror_factory(
            [Upstream(name, https_url, ca_file=str(ca.cert_path)), Upstream(untrusted, https_url)],
            tls=mirror_cert,
            ca_file=ca.cert_path,
        )
        assert mirror.mirror_url.startswith("https://")
        cert_dir = tmp_path / "skopeo-certs"
        cert_dir.mkdir()
        (cert_dir / "ca.crt").write_bytes(ca.cert_pem)

        with mirror_dropin(name, f"{mirror.mirror_host}/{name}", insecure=False):
            https_registry.reset_counts()
            skopeo_copy(
                f"{name}/test/app:v1", tmp_path / "app", tls_verify=True, extra_args=["--src-cert-dir", str(cert_dir)]
            )
            verify_dir_blobs(tmp_path / "app", upstream.app)
            assert https_registry.served_bytes() == upstream.app.total_blob_bytes

            # Without the CA, skopeo does not trust the mirror's certificate.
            refused = skopeo_copy(f"{name}/test/app:v1", tmp_path / "no-ca", tls_verify=True, check=False)
            assert refused.returncode != 0
            assert "certificate" in refused.stderr

        # A registry entry without the CA file: the upstream's certificate is not trusted, and the client is told.
        with httpx.Client(
            verify=ssl.create_default_context(cafile=str(ca.cert_path)), trust_env=False, timeout=60
        ) as http:
            answer = http.get(f"{mirror.mirror_url}/v2/{untrusted}/test/app/manifests/v1")
        assert answer.status_code == 502
        assert answer.json()["errors"][0]["code"] == "UPSTREAM_FAILED"
