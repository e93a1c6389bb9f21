"""Metadata hints: what a file's own metadata says about where it came from. Hints only, never the verdict.

Reads, with Pillow, the EXIF camera fields, the software that last wrote the file (EXIF Software, XMP
CreatorTool, PNG text chunks that image generators write) and flags the names of known photo editors and
image generators; and, when the optional `c2pa-python` package is installed, the C2PA Content Credentials
manifest embedded in the file (read locally: no network, no remote manifests). Metadata is trivially
stripped or forged, so none of this feeds the model's verdict: absence proves nothing, presence is a lead.
Pure Python, no Django.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import unicodedata
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

MAX_TEXT = 200
# Lower-case substrings of a software/creator string, with the name shown and what kind of tool it is.
KNOWN_SOFTWARE: tuple[tuple[str, str, str], ...] = (
    ("photoshop", "Adobe Photoshop", "editor"),
    ("lightroom", "Adobe Lightroom", "editor"),
    ("gimp", "GIMP", "editor"),
    ("affinity", "Affinity Photo", "editor"),
    ("pixelmator", "Pixelmator", "editor"),
    ("snapseed", "Snapseed", "editor"),
    ("facetune", "Facetune", "face editor"),
    ("faceapp", "FaceApp", "face editor"),
    ("picsart", "Picsart", "editor"),
    ("canva", "Canva", "editor"),
    ("paint.net", "Paint.NET", "editor"),
    ("stable diffusion", "Stable Diffusion", "image generator"),
    ("stablediffusion", "Stable Diffusion", "image generator"),
    ("automatic1111", "Stable Diffusion web UI", "image generator"),
    ("comfyui", "ComfyUI", "image generator"),
    ("invokeai", "InvokeAI", "image generator"),
    ("novelai", "NovelAI", "image generator"),
    ("midjourney", "Midjourney", "image generator"),
    ("dall-e", "DALL-E", "image generator"),
    ("dall·e", "DALL-E", "image generator"),
    ("openai", "OpenAI", "image generator"),
    ("firefly", "Adobe Firefly", "image generator"),
    ("imagen", "Google Imagen", "image generator"),
    ("leonardo.ai", "Leonardo.Ai", "image generator"),
    ("runway", "Runway", "image generator"),
    ("stylegan", "StyleGAN", "image generator"),
    ("deepfacelab", "DeepFaceLab", "face swap tool"),
    ("faceswap", "Faceswap", "face swap tool"),
    ("reface", "Reface", "face swap tool"),
)
# PNG text chunks that generator front-ends write (Stable Diffusion web UI: "parameters"; ComfyUI: "prompt"
# and "workflow"; InvokeAI: "Dream"/"invokeai_metadata"); their presence alone is a strong hint.
GENERATOR_TEXT_CHUNKS = {
    "parameters": "Stable Diffusion web UI",
    "prompt": "ComfyUI",
    "workflow": "ComfyUI",
    "dream": "InvokeAI",
    "invokeai_metadata": "InvokeAI",
    "sd-metadata": "InvokeAI",
}
# IPTC digital source types that mark generated or composited media (in XMP and in C2PA actions).
AI_SOURCE_TYPES = ("trainedalgorithmicmedia", "compositewithtrainedalgorithmicmedia", "algorithmicmedia")
_EXIF_FIELDS = {
    "Make": "make",
    "Model": "model",
    "Software": "software",
    "DateTime": "datetime",
    "DateTimeOriginal": "datetime_original",
    "LensModel": "lens_model",
}
_EXIF_IFD_POINTER = 0x8769
_GPS_IFD_POINTER = 0x8825
_XMP_CREATOR_TOOL = re.compile(rb"CreatorTool(?:>|=\")([^<\"]{1,300})")


def read_metadata_hints(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata hints for an image file, JSON-serialisable.

    Keys: `exif` (camera fields found, `has_gps` without coordinates), `software` (each software string found,
    with the known tool it names, if any), `generator_chunks` (PNG text chunks generators write), `ai_source_type`
    (an IPTC "made by an algorithm" marker in XMP), `c2pa` (see `read_c2pa`) and `hints` (short sentences for
    people). A file Pillow cannot open gives `{"readable": False, ...}`.
    """
    try:
        with Image.open(path) as image:
            image_format = image.format
            exif = _exif_fields(image)
            texts = {str(key): value for key, value in (image.info or {}).items() if isinstance(value, str)}
            xmp = _xmp_bytes(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return {"readable": False, "hints": [], "c2pa": {"status": "not checked"}}

    software = []
    for source, value in (("EXIF Software", exif.get("software")), ("XMP CreatorTool", _creator_tool(xmp))):
        if value:
            software.append({"source": source, "value": value, **(_known_tool(value) or {})})
    for key, value in texts.items():
        if key.lower() == "software":
            software.append(
                {"source": f"{image_format} text '{key}'", "value": _clean(value), **(_known_tool(value) or {})}
            )
    generator_chunks = sorted(
        {GENERATOR_TEXT_CHUNKS[key.lower()] for key in texts if key.lower() in GENERATOR_TEXT_CHUNKS}
    )
    ai_source_type = any(marker.encode() in (xmp or b"").lower() for marker in AI_SOURCE_TYPES)
    c2pa = read_c2pa(path)
    return {
        "readable": True,
        "format": image_format,
        "exif": exif,
        "software": software,
        "generator_chunks": generator_chunks,
        "ai_source_type": ai_source_type,
        "c2pa": c2pa,
        "hints": _hint_sentences(exif, software, generator_chunks, ai_source_type, c2pa),
    }


def read_video_metadata_hints(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata hints for a video: its C2PA Content Credentials only (EXIF and PNG text are image metadata)."""
    c2pa = read_c2pa(path)
    hints = _c2pa_sentences(c2pa) or ["No C2PA Content Credentials are embedded in this video."]
    if c2pa.get("status") == "unavailable":
        hints = []
    return {"readable": True, "c2pa": c2pa, "hints": hints}


def read_c2pa(path: str | os.PathLike) -> dict[str, Any]:
    """The embedded C2PA manifest's main facts, or why there are none.

    `status`: "present" (with `claim_generator`, `title`, `actions`, `ai_generated`, `validation_state`),
    "absent", "unavailable" (c2pa-python is not installed) or "unreadable" (a manifest that failed to parse).
    Remote manifests are never fetched.
    """
    try:
        import c2pa
    except ImportError:
        return {"status": "unavailable", "reason": "the c2pa-python package is not installed"}
    try:
        # Only what is embedded in the file is read: no remote manifest and no certificate status is fetched.
        offline = c2pa.Context(
            c2pa.Settings.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
        )
        with c2pa.Reader(str(path), context=offline) as reader:
            if not reader.is_embedded():
                return {"status": "absent"}
            store = json.loads(reader.json())
            validation_state = reader.get_validation_state()
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return {"status": "absent"}
        return {"status": "unreadable", "reason": _clean(str(exc))}
    except (OSError, ValueError) as exc:
        return {"status": "unreadable", "reason": _clean(str(exc))}
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "") or {}
    actions = []
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions.extend((assertion.get("data") or {}).get("actions") or [])
    source_types = " ".join(str(action.get("digitalSourceType", "")) for action in actions).lower()
    generator = manifest.get("claim_generator") or " ".join(
        str(info.get("name", "")) for info in manifest.get("claim_generator_info") or [] if isinstance(info, dict)
    )
    return {
        "status": "present",
        "claim_generator": _clean(generator),
        "title": _clean(manifest.get("title") or ""),
        "actions": sorted({_clean(str(action.get("action", ""))) for action in actions if action.get("action")}),
        "ai_generated": any(marker in source_types for marker in AI_SOURCE_TYPES),
        "validation_state": _clean(str(validation_state or "")),
    }


def _exif_fields(image: Image.Image) -> dict[str, Any]:
    exif = image.getexif()
    merged = dict(exif)
    # A broken EXIF sub-directory loses its fields, not the whole read.
    with contextlib.suppress(KeyError, ValueError, OSError):
        merged.update(exif.get_ifd(_EXIF_IFD_POINTER))
    fields: dict[str, Any] = {}
    for tag, value in merged.items():
        name = _EXIF_FIELDS.get(ExifTags.TAGS.get(tag, ""))
        if name and isinstance(value, str | bytes) and _clean(value):
            fields[name] = _clean(value)
    fields["has_gps"] = bool(exif.get(_GPS_IFD_POINTER))
    return fields


def _xmp_bytes(image: Image.Image) -> bytes:
    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)


def _creator_tool(xmp: bytes) -> str:
    match = _XMP_CREATOR_TOOL.search(xmp or b"")
    return _clean(match.group(1)) if match else ""


def _known_tool(value: str) -> dict[str, str] | None:
    lowered = value.lower()
    for needle, name, category in KNOWN_SOFTWARE:
        if needle in lowered:
            return {"known_tool": name, "category": category}
    return None


def _clean(value: str | bytes) -> str:
    """Metadata is attacker-controlled text: decode, drop control characters, bound the length."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = "".join(char for char in text if unicodedata.category(char)[0] != "C")
    return " ".join(text.split())[:MAX_TEXT]


def _hint_sentences(
    exif: dict[str, Any],
    software: list[dict[str, str]],
    generator_chunks: list[str],
    ai_source_type: bool,
    c2pa: dict[str, Any],
) -> list[str]:
    hints = []
    camera = " ".join(value for value in (exif.get("make"), exif.get("model")) if value)
    if camera:
        hints.append(f"EXIF names a camera: {camera}.")
    else:
        hints.append("No camera make or model in the metadata (common after editing, messaging apps or generation).")
    for entry in software:
        if entry.get("known_tool"):
            hints.append(f"{entry['source']} names {entry['known_tool']}, a known {entry['category']}.")
    for generator in generator_chunks:
        hints.append(f"The file carries generation settings written by {generator}.")
    if ai_source_type:
        hints.append("XMP metadata marks the image as made by a trained algorithm (IPTC digital source type).")
    hints.extend(_c2pa_sentences(c2pa))
    return hints


def _c2pa_sentences(c2pa: dict[str, Any]) -> list[str]:
    if c2pa.get("status") == "present":
        origin = c2pa.get("claim_generator") or "an unnamed tool"
        sentences = [f"C2PA Content Credentials are present, issued by {origin} ({c2pa.get('validation_state')})."]
        if c2pa.get("ai_generated"):
            sentences.append("The Content Credentials declare AI-generated content.")
        return sentences
    if c2pa.get("status") == "unreadable":
        return ["A C2PA manifest is embedded but could not be read."]
    return []
