"""Shadow mode: a candidate version scores new scans after their verdict is stored, unseen by users, and the admin
reports how often it agrees with the verdicts users were shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from scans.analyzers import analyzers_clear, shadow_scorer_for
from scans.models import Scan
from scans.services import scan_create
from scans.tests.uploads import face_photo, gradient_png, make_scan_row, short_clip, upload
from scans.webhooks import webhook_payload
from training.models import ModelVersion, ShadowResult
from training.selectors import model_version_shadow, shadow_agreement
from training.services import (
    ShadowRefused,
    model_version_activate,
    model_version_register,
    model_version_shadow_start,
    model_version_shadow_stop,
    shadow_result_record,
)
from training.shadow import shadow_run_for_scan

pytestmark = pytest.mark.django_db

CHANGELIST_URL = reverse("admin:training_modelversion_changelist")


def _candidate(active: ModelVersion, *, version: str, **settings_overrides: object) -> ModelVersion:
    """An inactive version with the active one's weights; its settings may be changed to change its answers."""
    return model_version_register(
        kind=active.kind,
        name="shadow-candidate",
        version=version,
        weights_path=Path(active.weights.path),
        settings={**active.settings, **settings_overrides},
    )


def _forced(probability_sign: int) -> dict:
    """Calibration that ignores the logit: every face comes out (almost) certainly fake (+1) or real (-1)."""
    return {"calibration": {"scale": 0.0, "bias": 20.0 * probability_sign}}


@pytest.fixture
def image_candidate(tiny_models) -> ModelVersion:
    image_version, _video_version = tiny_models
    return _candidate(image_version, version="same-weights")


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    """Each test loads its own versions: cached analyzers are keyed by ids that the next test's database reuses."""
    analyzers_clear()
    yield
    analyzers_clear()


def _upload_path(owner, path: Path) -> Scan:
    return scan_create(owner=owner, uploaded_file=upload(path.read_bytes(), path.name))


# --- which version is the candidate ------------------------------------------------------------------------


def test_a_version_becomes_the_one_shadow_candidate_of_its_kind(tiny_models, image_candidate):
    image_version, _video_version = tiny_models
    other = _candidate(image_version, version="other")

    model_version_shadow_start(model_version=image_candidate)
    assert model_version_shadow(kind="image") == image_candidate
    assert model_version_shadow(kind="video") is None
    image_candidate.refresh_from_db()
    assert image_candidate.shadow_since is not None

    model_version_shadow_start(model_version=other)
    assert model_version_shadow(kind="image") == other
    assert list(ModelVersion.objects.filter(is_shadow=True)) == [other]

    with pytest.raises(ShadowRefused, match="active"):
        model_version_shadow_start(model_version=image_version)
    assert model_version_shadow_stop(kind="image") == other
    assert model_version_shadow(kind="image") is None
    assert model_version_shadow_stop(kind="image") is None


def test_the_database_refuses_two_candidates_of_a_kind_or_an_active_candidate(tiny_models, image_candidate):
    image_version, _video_version = tiny_models
    other = _candidate(image_version, version="other")
    model_version_shadow_start(model_version=image_candidate)

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=other.pk).update(is_shadow=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=image_version.pk).update(is_shadow=True)


def test_activating_the_candidate_ends_its_shadow_mode(image_candidate):
    model_version_shadow_start(model_version=image_candidate)

    model_version_activate(model_version=image_candidate)

    image_candidate.refresh_from_db()
    assert (image_candidate.is_active, image_candidate.is_shadow, image_candidate.shadow_since) == (True, False, None)


# --- the worker runs it ----------------------------------------------------------------------------------------


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
    candidate = _candidate(video_version, version="same-weights")
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
        settings={**image_version.settings, **_forced(+1)},
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


def test_a_disagreement_is_recorded_with_both_verdicts(alice, data_dir, tiny_models, run_worker):
    image_version, _video_version = tiny_models
    scan = _upload_path(alice, face_photo(data_dir))
    run_worker()
    scan.refresh_from_db()
    # The opposite of what the active version said (an uncertain verdict differs from both).
    candidate = _candidate(image_version, version="opposite", **_forced(-1 if scan.verdict == "fake" else +1))
    model_version_shadow_start(model_version=candidate)

    shadow = shadow_run_for_scan(scan_id=scan.pk)

    assert shadow is not None and shadow.agreed is False
    assert shadow.verdict == ("real" if scan.verdict == "fake" else "fake")
    assert shadow.probability_change == pytest.approx(shadow.fake_probability - scan.fake_probability)
    assert shadow_run_for_scan(scan_id=scan.pk).pk == shadow.pk  # recorded once per scan and candidate


# --- the admin -------------------------------------------------------------------------------------------------


def _run_action(admin_client, action: str, versions: list[ModelVersion]):
    return admin_client.post(
        CHANGELIST_URL, {"action": action, "_selected_action": [version.pk for version in versions]}, follow=True
    )


def test_the_admin_actions_start_and_stop_shadow_mode(admin_client, tiny_models, image_candidate):
    image_version, _video_version = tiny_models

    started = _run_action(admin_client, "start_shadow", [image_candidate]).content.decode()
    refused = _run_action(admin_client, "start_shadow", [image_version]).content.decode()

    assert "now scores every new image scan in shadow mode" in started
    assert "is the active image model" in refused
    assert model_version_shadow(kind="image") == image_candidate
    stopped = _run_action(admin_client, "stop_shadow", [image_version]).content.decode()
    assert "Shadow mode stopped" in stopped
    assert model_version_shadow(kind="image") is None


def test_the_admin_refuses_two_candidates_of_one_kind_at_once(admin_client, tiny_models, image_candidate):
    image_version, _video_version = tiny_models
    other = _candidate(image_version, version="other")

    response = _run_action(admin_client, "start_shadow", [image_candidate, other])

    assert "Only one version per kind can be in shadow mode" in response.content.decode()
    assert model_version_shadow(kind="image") is None


def _shadowed(owner, candidate: ModelVersion, reference: ModelVersion, shown: tuple, mine: tuple | None) -> Scan:
    scan = make_scan_row(owner, status=Scan.Status.DONE, verdict=shown[0], fake_probability=shown[1])
    common = {
        "scan_id": scan.pk,
        "candidate": candidate,
        "reference": reference,
        "kind": "image",
        "reference_verdict": shown[0],
        "reference_probability": shown[1],
    }
    if mine is None:
        shadow_result_record(**common, error="OSError: the file went away")
    else:
        outcome = {"verdict": mine[0], "fake_probability": mine[1], "faces": [{"index": 0}], "timings": {}}
        shadow_result_record(**common, outcome=outcome)
    return scan


def test_the_version_page_reports_agreement_and_links_each_disagreement(
    admin_client, alice, tiny_models, image_candidate
):
    image_version, _video_version = tiny_models
    model_version_shadow_start(model_version=image_candidate)
    _shadowed(alice, image_candidate, image_version, ("fake", 0.9), ("fake", 0.8))
    _shadowed(alice, image_candidate, image_version, ("real", 0.1), ("real", 0.2))
    _shadowed(alice, image_candidate, image_version, ("real", 0.2), ("real", 0.2))
    disagreeing = _shadowed(alice, image_candidate, image_version, ("real", 0.3), ("fake", 0.9))
    _shadowed(alice, image_candidate, image_version, ("fake", 0.95), None)

    page = admin_client.get(reverse("admin:training_modelversion_change", args=[image_candidate.pk]))

    content = page.content.decode()
    assert page.status_code == 200
    # 3 of 4 agree; mean |dp| = (0.1 + 0.1 + 0 + 0.6) / 4 = 0.2
    assert "4 scans compared" in content
    assert "<strong>75.0%</strong> (3 of 4)" in content
    assert "0.2000" in content
    assert "1 shadow runs failed" in content
    assert reverse("admin:scans_scan_change", args=[disagreeing.pk]) in content
    listing = admin_client.get(
        reverse("admin:training_shadowresult_changelist"),
        {"candidate__id__exact": image_candidate.pk, "agreed__exact": 0},
    )
    assert listing.status_code == 200
    assert str(disagreeing.pk) in listing.content.decode()
    assert listing.context["cl"].result_count == 1


def test_a_version_never_shadowed_says_so(admin_client, tiny_models):
    image_version, _video_version = tiny_models

    content = admin_client.get(reverse("admin:training_modelversion_change", args=[image_version.pk])).content

    assert b"Never run in shadow mode." in content


def test_shadow_results_are_for_staff_only_and_read_only(client, admin_client, alice):
    client.force_login(alice)

    assert client.get(reverse("admin:training_shadowresult_changelist")).status_code == 302
    assert admin_client.get(reverse("admin:training_shadowresult_add")).status_code == 403
