"""Throwaway TLS certificates for tests that start a TLS ``redis-server``."""

import subprocess


def self_signed_certificate(directory):
    """A fresh self-signed certificate for 127.0.0.1 (its own CA) and its key in ``directory``;
    (cert path, key path)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
