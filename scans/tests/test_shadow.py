"""Shadow mode, the run: a candidate version rescores each new scan after its verdict is stored, on the very
crops the scan's own analysis cut, unseen by users; whatever goes wrong stays on the shadow row."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image

from ml.faces import load_image
from scans.analyzers import analyzers_clear, shadow_scorer_for
from scans.models import Scan
from scans.services import scan_create
from scans.tests.uploads import face_photo, gradient_png, short_clip, upload
from training.models import ModelVersion, ShadowResult
from training.selectors import shadow_agreement
from training.services import model_version_register, model_version_shadow_start, shadow_result_record
from training.tests.versions import candidate_version, forced
from webhooks.delivery import webhook_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def image_candidate(tiny_models) -> ModelVersion:
    image_version, _video_version = tiny_models
    return candidate_version(image_version, version="same-weights")


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    """Each test loads its own versions: cached analyzers are keyed by ids that the next test's database reuses."""
    analyzers_clear()
    yield
    analyzers_clear()


def _upload_path(owner, path: Path) -> Scan:
    return scan_create(owner=owner, uploaded_file=upload(path.read_bytes(), path.name))


def test_a_new_image_scan_is_also_scored_by_the_candidate_on_the_same_faces(
    alice, data_dir, tiny_models, image_candidate, run_worker
):
    image_version, _video_version = tiny_models
    model_version_shadow_start(model_version=image_candidate)
    scan = _upload_path(alice, face_photo(data_dir))

    worker = run_worker()

    scan.refresh_from_db()
    assert worker.successful_job_count == 1
    assert scan.status == Scan.Status.DONE, scan.error_message
    assert scan.result["models"]["image"] == image_version.label
    shadow = ShadowResult.objects.get(scan=scan)
    assert (shadow.candidate, shadow.reference, shadow.kind) == (image_candidate, image_version, "image")
    assert (shadow.reference_verdict, shadow.reference_probability) == (scan.verdict, scan.fake_probability)
    # Same weights and settings on the same face boxes: the same answer, which shows the boxes were reused.
    assert shadow.fake_probability == pytest.approx(scan.fake_probability, abs=1e-5)
    assert shadow.verdict == scan.verdict
    assert shadow.agreed is True
    assert shadow.faces_scored == len(scan.faces) == 1
    assert shadow.error == ""
    assert set(shadow.timings) == {"decode_s", "model_s", "total_s"}


def test_a_new_video_scan_is_scored_by_the_video_candidate_on_the_same_tracks(
    alice, data_dir, tiny_models, run_worker, settings
):
    settings.UNMASK_VIDEO_FRAMES = 8
    _image_version, video_version = tiny_models
    candidate = candidate_version(video_version, version="same-weights")
    model_version_shadow_start(model_version=candidate)
    scan = _upload_path(alice, short_clip(data_dir))

    run_worker()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.DONE, scan.error_message
    shadow = ShadowResult.objects.get(scan=scan)
    assert (shadow.candidate, shadow.reference, shadow.kind) == (candidate, video_version, "video")
    assert shadow.faces_scored == len(scan.faces) >= 1
    assert shadow.fake_probability == pytest.approx(scan.fake_probability, abs=1e-5)
    assert shadow.agreed is True


def test_an_image_candidate_does_not_shadow_video_scans_nor_faceless_images(
    alice, data_dir, tiny_models, image_candidate, run_worker, settings
):
    settings.UNMASK_VIDEO_FRAMES = 4
    model_version_shadow_start(model_version=image_candidate)
    video = _upload_path(alice, short_clip(data_dir))
    faceless = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "sky.png"))

    run_worker()

    video.refresh_from_db()
    faceless.refresh_from_db()
    assert (video.status, faceless.status, faceless.verdict) == ("done", "done", "no_face")
    assert not ShadowResult.objects.exists()


def test_a_candidate_that_cannot_load_never_fails_the_scan(alice, data_dir, tiny_models, image_candidate, run_worker):
    model_version_shadow_start(model_version=image_candidate)
    Path(image_candidate.weights.path).write_bytes(b"not a keras file")
    scan = _upload_path(alice, face_photo(data_dir))

    worker = run_worker()

    scan.refresh_from_db()
    assert worker.successful_job_count == 1 and worker.failed_job_count == 0
    assert scan.status == Scan.Status.DONE, scan.error_message
    assert scan.error_message == ""
    shadow = ShadowResult.objects.get(scan=scan)
    assert shadow.agreed is None and shadow.verdict == "" and shadow.fake_probability is None
    assert "ModelError" in shadow.error and "cannot load weights" in shadow.error
    assert shadow_agreement(candidate=image_candidate).failed == 1


def test_the_user_sees_nothing_of_the_shadow_run(alice, data_dir, tiny_models, run_worker, client, api_client_for):
    image_version, _video_version = tiny_models
    # A candidate that calls every face fake, under a name that must not appear anywhere the owner looks.
    candidate = model_version_register(
        kind="image",
        name="secret-candidate-name",
        version="9.9.9",
        weights_path=Path(image_version.weights.path),
        settings={**image_version.settings, **forced(+1)},
    )
    model_version_shadow_start(model_version=candidate)
    scan = _upload_path(alice, face_photo(data_dir))
    run_worker()
    scan.refresh_from_db()
    shadow = ShadowResult.objects.get(scan=scan)
    assert shadow.verdict == "fake" and shadow.fake_probability > 0.999
    # The owner's verdict is the active model's: its one face's probability, whatever the candidate said.
    assert scan.fake_probability == pytest.approx(scan.faces[0]["fake_probability"])
    assert scan.result["models"]["image"] == image_version.label
    client.force_login(alice)
    api = api_client_for(alice)

    seen = {
        "API scan": api.get(reverse("api:scan-detail", args=[scan.pk])).content,
        "API list": api.get(reverse("api:scan-list")).content,
        "API CSV": api.get(reverse("api:scan-export-csv")).content,
        "API JSON export": api.get(reverse("api:scan-export-json", args=[scan.pk])).content,
        "scan page": client.get(reverse("scans:detail", args=[scan.pk])).content,
        "dashboard": client.get(reverse("scans:dashboard")).content,
        "CSV export": client.get(reverse("scans:export-csv")).content,
        "webhook payload": json.dumps(webhook_payload(scan=scan)).encode(),
    }

    for where, content in seen.items():
        assert b"secret-candidate-name" not in content, where
        assert b"9.9.9" not in content, where


def test_the_worker_loads_a_candidate_once_per_process(image_candidate):
    first = shadow_scorer_for(image_candidate)

    assert shadow_scorer_for(image_candidate) is first
    analyzers_clear()
    assert shadow_scorer_for(image_candidate) is not first


def _same_pixels_other_bytes(path: Path) -> bytes:
    """The photo's decoded pixels as a PNG: other bytes (so no earlier result is reused), the same analysis."""
    buffer = io.BytesIO()
    Image.fromarray(load_image(path)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_disagreement_is_recorded_with_both_verdicts(alice, data_dir, tiny_models, run_worker):
    image_version, _video_version = tiny_models
    photo = face_photo(data_dir)
    first = _upload_path(alice, photo)
    run_worker()
    first.refresh_from_db()
    # The opposite of what the active version said (an uncertain verdict differs from both).
    candidate = candidate_version(image_version, version="opposite", **forced(-1 if first.verdict == "fake" else +1))
    model_version_shadow_start(model_version=candidate)
    scan = scan_create(owner=alice, uploaded_file=upload(_same_pixels_other_bytes(photo), "same-face.png"))

    run_worker()

    scan.refresh_from_db()
    assert scan.verdict == first.verdict and scan.reused_from_id is None
    shadow = ShadowResult.objects.get(scan=scan)
    assert shadow is not None and shadow.agreed is False
    assert shadow.verdict == ("real" if scan.verdict == "fake" else "fake")
    assert shadow.probability_change == pytest.approx(shadow.fake_probability - scan.fake_probability)
    again = shadow_result_record(
        scan_id=scan.pk,
        candidate=candidate,
        reference=image_version,
        kind="image",
        reference_verdict=scan.verdict,
        reference_probability=scan.fake_probability,
        error="a second run",
    )
    assert again.pk == shadow.pk  # recorded once per scan and candidate
