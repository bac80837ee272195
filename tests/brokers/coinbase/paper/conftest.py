"""Paper exchange processes of the Coinbase tests' own: one over HTTP for ordersync's
adapter, one over HTTPS (a certificate made for the test) for Coinbase's SDK, which speaks
nothing else; both know the key below by name and public key."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.brokers.coinbase.paper import KEY_NAME, PUBLIC
from tests.paper_exchange import (
    ACCOUNTS,
    KEY_ID,
    REPO_ROOT,
    SECRET_KEY,
    PaperExchange,
    _free_port,
    _wait_healthy,
)
from tests.processes import stop_process


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _exchange(
    tmp_path_factory: pytest.TempPathFactory, tls: bool
) -> Iterator[tuple[PaperExchange, Path | None]]:
    port = _free_port()
    directory = tmp_path_factory.mktemp("coinbase-exchange")
    public = directory / "key.pub.pem"
    public.write_text(PUBLIC)
    command = [
        sys.executable, "-m", "brokers.paper", "--host", "127.0.0.1", "--port", str(port),
        "--key-id", KEY_ID, "--secret-key", SECRET_KEY, "--session-s", "0", "--seed", "11",
        "--coinbase-accounts", f"{KEY_NAME}={public}",
    ]  # fmt: skip
    scheme, cert = "http", None
    if tls:
        cert, key = _self_signed(directory)
        command += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
        scheme = "https"
    base_url = f"{scheme}://127.0.0.1:{port}"
    log = directory / "exchange.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        verify = True if cert is None else ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=f"{base_url}/_sim", timeout=10, verify=verify) as control:
            _wait_healthy(process, control, log)
            yield PaperExchange(base_url, KEY_ID, SECRET_KEY, control, list(ACCOUNTS[:1])), cert
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def coinbase_exchange_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperExchange]:
    for exchange, _ in _exchange(tmp_path_factory, tls=False):
        yield exchange


@pytest.fixture
def coinbase_exchange(coinbase_exchange_process: PaperExchange) -> PaperExchange:
    """Emptied and without faults before each test."""
    coinbase_exchange_process.reset()
    coinbase_exchange_process.clear_faults()
    return coinbase_exchange_process


@pytest.fixture(scope="module")
def tls_exchange_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PaperExchange, Path]]:
    for exchange, cert in _exchange(tmp_path_factory, tls=True):
        assert cert is not None
        yield exchange, cert


@pytest.fixture
def tls_exchange(tls_exchange_process: tuple[PaperExchange, Path]) -> tuple[PaperExchange, Path]:
    """Emptied and without faults before each test; with the certificate to trust."""
    tls_exchange_process[0].reset()
    tls_exchange_process[0].clear_faults()
    return tls_exchange_process


@pytest.fixture
def https_exchange(
    tls_exchange: tuple[PaperExchange, Path], monkeypatch: pytest.MonkeyPatch
) -> PaperExchange:
    """The HTTPS exchange with its certificate trusted by requests (``REQUESTS_CA_BUNDLE``)
    and a frozen market, BTC-USD at 60000."""
    exchange, cert = tls_exchange
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    exchange.freeze_market()
    exchange.set_price("coinbase:BTC-USD", Decimal("60000"))
    return exchange
