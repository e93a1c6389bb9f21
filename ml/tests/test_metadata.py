"""Metadata hints: EXIF camera fields, known editors and generators, C2PA Content Credentials read offline."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from ml.metadata import read_c2pa, read_metadata_hints

_MAKE, _MODEL, _SOFTWARE = 0x010F, 0x0110, 0x0131


def _jpeg_with_exif(path: Path, **tags: str) -> Path:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[{"make": _MAKE, "model": _MODEL, "software": _SOFTWARE}[tag]] = value
    Image.new("RGB", (32, 32), (120, 90, 60)).save(path, format="JPEG", exif=exif)
    return path


def test_it_reports_the_camera_and_flags_a_known_editor(tmp_path):
    photo = _jpeg_with_exif(tmp_path / "edited.jpg", make="Canon", model="EOS 5D", software="Adobe Photoshop 25.1")

    hints = read_metadata_hints(photo)

    assert hints["exif"]["make"] == "Canon" and hints["exif"]["model"] == "EOS 5D"
    assert hints["software"][0]["known_tool"] == "Adobe Photoshop"
    assert hints["software"][0]["category"] == "editor"
    assert "EXIF names a camera: Canon EOS 5D." in hints["hints"]


def test_it_flags_generation_settings_left_in_png_text(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "portrait photo, Steps: 20, Sampler: Euler a")
    path = tmp_path / "generated.png"
    Image.new("RGB", (32, 32)).save(path, pnginfo=info)

    hints = read_metadata_hints(path)

    assert hints["generator_chunks"] == ["Stable Diffusion web UI"]
    assert any("Stable Diffusion web UI" in hint for hint in hints["hints"])


def test_a_bare_file_says_so_and_has_no_credentials(tmp_path):
    path = tmp_path / "bare.png"
    Image.new("RGB", (32, 32)).save(path)

    hints = read_metadata_hints(path)

    assert hints["exif"] == {"has_gps": False}
    assert hints["software"] == []
    assert hints["c2pa"] == {"status": "absent"}


def test_control_characters_in_metadata_are_removed(tmp_path):
    photo = _jpeg_with_exif(tmp_path / "odd.jpg", software="Evil\x1b[31m\x07Tool\r\nSecond line")

    assert read_metadata_hints(photo)["exif"]["software"] == "Evil[31mToolSecond line"


def test_an_unreadable_file_is_not_readable(tmp_path):
    path = tmp_path / "junk.jpg"
    path.write_bytes(b"not an image")

    assert read_metadata_hints(path)["readable"] is False


def _sign_with_test_credentials(path: Path) -> Path:
    """A JPEG with an embedded C2PA manifest declaring AI generation, signed by a throwaway test CA."""
    c2pa = pytest.importorskip("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Unmask"),
            ]
        )

    def usage(*, signer: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=signer,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=not signer,
            crl_sign=not signer,
            encipher_only=False,
            decipher_only=False,
        )

    def certificate(subject, issuer, public_key, signing_key, *, signer: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=not signer, path_length=None), critical=True)
            .add_extension(usage(signer=signer), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if signer:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, signer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name("Unmask Test CA"), name("Unmask Test CA"), ca_key.public_key(), ca_key, signer=False)
    leaf = certificate(name("Unmask Test Signer"), ca.subject, signer_key.public_key(), ca_key, signer=True)
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    private_key = signer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=private_key, ta_url=None)
    )
    manifest = {
        "claim_generator_info": [{"name": "Unmask test generator", "version": "1.0"}],
        "title": "generated.jpg",
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                        }
                    ]
                },
            }
        ],
    }
    source = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 50)).save(source, format="JPEG")
    source.seek(0)
    signed = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", source, signed)
    path.write_bytes(signed.getvalue())
    return path


def test_it_reads_embedded_content_credentials_without_the_network(tmp_path):
    signed = _sign_with_test_credentials(tmp_path / "credentials.jpg")

    credentials = read_c2pa(signed)

    assert credentials["status"] == "present"
    assert credentials["claim_generator"] == "Unmask test generator"
    assert credentials["actions"] == ["c2pa.created"]
    assert credentials["ai_generated"] is True
    assert "The Content Credentials declare AI-generated content." in read_metadata_hints(signed)["hints"]
