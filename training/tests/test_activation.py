"""Model activation: one active version per kind, switching, the admin action, and scans recording their versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.urls import reverse

from scans.models import Scan
from scans.services import scan_create
from scans.tests.uploads import gradient_png, upload
from training.models import ModelVersion
from training.selectors import model_version_active
from training.services import model_version_activate, model_version_register

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_image_version(tiny_models) -> ModelVersion:
    """Another, inactive image version (the same tiny weights under a new version name)."""
    image_version, _video_version = tiny_models
    return model_version_register(
        kind="image",
        name="tiny-image",
        version="test-2",
        weights_path=Path(image_version.weights.path),
        settings=image_version.settings,
    )


def test_registering_with_activate_makes_it_the_one_active_version(tiny_models):
    image_version, video_version = tiny_models

    assert model_version_active(kind="image") == image_version
    assert model_version_active(kind="video") == video_version


def test_a_new_version_starts_inactive(second_image_version, tiny_models):
    assert second_image_version.is_active is False
    assert model_version_active(kind="image") == tiny_models[0]


def test_activating_one_deactivates_the_other_of_its_kind_only(tiny_models, second_image_version):
    image_version, video_version = tiny_models

    model_version_activate(model_version=second_image_version)

    image_version.refresh_from_db()
    video_version.refresh_from_db()
    assert model_version_active(kind="image") == second_image_version
    assert image_version.is_active is False
    assert second_image_version.activated_at is not None
    assert video_version.is_active is True
    assert ModelVersion.objects.filter(kind="image", is_active=True).count() == 1


def test_the_database_refuses_two_active_versions_of_a_kind(second_image_version):
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second_image_version.pk).update(is_active=True)


def test_a_scan_records_the_versions_active_when_it_was_created(alice, tiny_models, second_image_version, run_worker):
    first_version, _video_version = tiny_models
    before = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "before.png"))

    model_version_activate(model_version=second_image_version)
    after = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "after.png"))
    run_worker()

    before.refresh_from_db()
    after.refresh_from_db()
    assert before.image_model_version == first_version
    assert after.image_model_version == second_image_version
    # Each job used the version its scan recorded, not whatever was active when it ran.
    assert before.result["models"]["image"] == "tiny-image@test"
    assert after.result["models"]["image"] == "tiny-image@test-2"


def test_a_recorded_version_cannot_be_deleted_from_under_a_scan(alice, tiny_models, redis_conn):
    image_version, _video_version = tiny_models
    scan_create(owner=alice, uploaded_file=upload(gradient_png(), "a.png"))

    with pytest.raises(ProtectedError), transaction.atomic():
        image_version.delete()
    assert Scan.objects.get().image_model_version == image_version


# --- Admin ---------------------------------------------------------------------------------------------


def _run_activate_action(admin_client, versions: list[ModelVersion], *, confirm: bool = True):
    form = {"action": "activate", "_selected_action": [version.pk for version in versions]}
    if confirm:
        form["confirm"] = "yes"
    return admin_client.post(reverse("admin:training_modelversion_changelist"), form, follow=True)


def test_the_admin_action_activates_the_selected_version(admin_client, tiny_models, second_image_version):
    response = _run_activate_action(admin_client, [second_image_version])

    assert response.status_code == 200
    assert model_version_active(kind="image") == second_image_version
    assert "is now the active image model" in response.content.decode()


def test_the_admin_action_refuses_two_versions_of_one_kind(admin_client, tiny_models, second_image_version):
    image_version, _video_version = tiny_models

    response = _run_activate_action(admin_client, [image_version, second_image_version])

    assert "Only one version per kind can be active" in response.content.decode()
    assert model_version_active(kind="image") == image_version


def test_the_admin_lists_versions_with_their_metrics(admin_client, tiny_models):
    image_version, _video_version = tiny_models
    ModelVersion.objects.filter(pk=image_version.pk).update(metrics={"auc": 0.912, "notes": "text is skipped"})

    response = admin_client.get(reverse("admin:training_modelversion_changelist"))

    assert response.status_code == 200
    assert "auc=0.912" in response.content.decode()


def test_the_admin_shows_a_scan_read_only_and_deletes_it_with_its_file(
    admin_client, alice, tiny_models, redis_conn, django_capture_on_commit_callbacks
):
    scan = scan_create(owner=alice, uploaded_file=upload(gradient_png(), "a.png"))
    stored_path = Path(scan.file.path)
    change_url = reverse("admin:scans_scan_change", args=[scan.pk])

    page = admin_client.get(change_url)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:scans_scan_delete", args=[scan.pk]), {"post": "yes"})

    assert page.status_code == 200
    assert 'name="verdict"' not in page.content.decode()
    assert not Scan.objects.filter(pk=scan.pk).exists()
    assert not stored_path.exists()


def test_the_scan_admin_filters_and_searches(admin_client, alice, tiny_models, redis_conn):
    scan_create(owner=alice, uploaded_file=upload(gradient_png(), "holiday.png"))
    changelist = reverse("admin:scans_scan_changelist")

    found = admin_client.get(changelist, {"q": "holiday", "status__exact": "queued", "kind__exact": "image"})
    missing = admin_client.get(changelist, {"q": "nothing-like-this"})

    assert found.status_code == missing.status_code == 200
    assert found.context["cl"].result_count == 1
    assert missing.context["cl"].result_count == 0


def test_the_admin_asks_before_activating_and_activates_only_on_confirmation(
    admin_client, tiny_models, second_image_version
):
    image_version, _video_version = tiny_models

    question = _run_activate_action(admin_client, [second_image_version], confirm=False)

    page = question.content.decode()
    assert "Activate this model version?" in page and 'name="confirm" value="yes"' in page
    assert model_version_active(kind="image") == image_version
    assert "data-activation-worse" not in page


def test_the_confirmation_warns_when_the_comparison_marks_the_candidate_worse(
    admin_client, tiny_models, second_image_version
):
    image_version, _video_version = tiny_models
    ModelVersion.objects.filter(pk=image_version.pk).update(metrics={"evaluate:val": {"auc": 0.95}})
    ModelVersion.objects.filter(pk=second_image_version.pk).update(metrics={"evaluate:val": {"auc": 0.80}})

    page = _run_activate_action(admin_client, [second_image_version], confirm=False).content.decode()

    assert "The comparison marks this version worse" in page
    assert "auc on evaluate:val (0.9500 → 0.8000)" in page
    assert "Activate anyway" in page
    assert model_version_active(kind="image") == image_version
