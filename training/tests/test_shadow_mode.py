"""Shadow mode, the model side: which version is a kind's candidate, the admin's actions, and the version page's
report of how often the candidate agrees with the verdicts users were shown (the runs: scans/tests/test_shadow.py)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from ml.result import ShadowFace, ShadowOutcome
from scans.models import Scan
from scans.tests.uploads import make_scan_row
from training.models import ModelVersion
from training.selectors import model_version_shadow
from training.services import (
    ShadowRefused,
    model_version_activate,
    model_version_shadow_start,
    model_version_shadow_stop,
    shadow_result_record,
)
from training.tests.versions import candidate_version

pytestmark = pytest.mark.django_db

CHANGELIST_URL = reverse("admin:training_modelversion_changelist")


@pytest.fixture
def image_candidate(tiny_models) -> ModelVersion:
    image_version, _video_version = tiny_models
    return candidate_version(image_version, version="same-weights")


# --- which version is the candidate ------------------------------------------------------------------------


def test_a_version_becomes_the_one_shadow_candidate_of_its_kind(tiny_models, image_candidate):
    image_version, _video_version = tiny_models
    other = candidate_version(image_version, version="other")

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


def test_the_database_refuses_two_candidates_of_a_kind_or_an_activecandidate_version(tiny_models, image_candidate):
    image_version, _video_version = tiny_models
    other = candidate_version(image_version, version="other")
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
    other = candidate_version(image_version, version="other")

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
        face = ShadowFace(index=0, fake_probability=mine[1], verdict=mine[0])
        outcome = ShadowOutcome(verdict=mine[0], fake_probability=mine[1], faces=(face,), timings={}, model="x@1")
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
