"""Model management in the admin: upload a version, see its metrics and plots, compare, activate, roll back."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from training.models import ModelVersion
from training.selectors import model_version_active, model_version_plots
from training.services import model_version_register
from training.shipped import SHIPPED_MANIFEST, read_manifest

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:training_modelversion_add")
CHANGELIST_URL = reverse("admin:training_modelversion_changelist")
VALID_SETTINGS = {"threshold": 0.6, "uncertain_low": 0.4, "uncertain_high": 0.6, "crop_rule": {"margin": 0.15}}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def tiny_image_weights(_tiny_model_files) -> Path:
    image_spec, _video_spec = _tiny_model_files
    return Path(image_spec.weights_path)


def _upload_form(weights_path: Path, /, **overrides: object) -> dict[str, object]:
    form = {
        "kind": "image",
        "name": "candidate",
        "version": "2.0.0",
        "weights": SimpleUploadedFile("candidate.keras", weights_path.read_bytes()),
        "settings": json.dumps(VALID_SETTINGS),
        "metrics": json.dumps({"evaluate:val": {"auc": 0.95, "accuracy": 0.7}}),
        "training_notes": "fine-tuned on more faces",
        "roc_plot": SimpleUploadedFile("roc.png", _png()),
    }
    form.update(overrides)
    return form


def test_a_new_version_is_uploaded_inactive_with_its_plot(admin_client, tiny_models, tiny_image_weights):
    response = admin_client.post(ADD_URL, _upload_form(tiny_image_weights))

    assert response.status_code == 302, response.content.decode()[:2000]
    candidate = ModelVersion.objects.get(name="candidate")
    assert (candidate.kind, candidate.version, candidate.is_active) == ("image", "2.0.0", False)
    assert candidate.settings == VALID_SETTINGS
    assert Path(candidate.weights.path).read_bytes() == tiny_image_weights.read_bytes()
    assert set(model_version_plots(candidate)) == {"roc.png"}
    plot = admin_client.get(reverse("admin:training_modelversion_plot", args=[candidate.pk, "roc.png"]))
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png"
    assert b"".join(plot.streaming_content) == _png()
    page = admin_client.get(reverse("admin:training_modelversion_change", args=[candidate.pk])).content.decode()
    assert reverse("admin:training_modelversion_plot", args=[candidate.pk, "roc.png"]) in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"weights": SimpleUploadedFile("weights.h5", b"HDF")}, "Upload a .keras file."),
        ({"weights": SimpleUploadedFile("weights.keras", b"not a zip")}, "not a zip archive"),
        ({"settings": json.dumps({"crop_rule": {}})}, "threshold"),
        ({"settings": json.dumps({"threshold": 0.5, "uncertain_low": 0.7})}, "uncertain_low"),
        ({"roc_plot": SimpleUploadedFile("roc.png", b"GIF89a")}, "Upload a PNG image."),
        ({"name": "same as the active one"}, "already exists"),
    ],
)
def test_the_upload_form_refuses_what_inference_could_not_use(
    admin_client, tiny_models, tiny_image_weights, overrides, message
):
    image_version, _video_version = tiny_models
    if "name" in overrides:
        overrides = {**overrides, "name": image_version.name, "version": image_version.version}

    response = admin_client.post(ADD_URL, _upload_form(tiny_image_weights, **overrides))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ModelVersion.objects.filter(name="candidate").exists()


def test_the_change_page_compares_a_candidate_with_the_active_version(admin_client, tiny_models, tiny_image_weights):
    image_version, _video_version = tiny_models
    ModelVersion.objects.filter(pk=image_version.pk).update(
        metrics={"evaluate:val": {"auc": 0.9, "accuracy": 0.8, "log_loss": 0.3}, "training": {"auc": 0.99}}
    )
    candidate = model_version_register(
        kind="image",
        name="candidate",
        version="2.0.0",
        weights_path=tiny_image_weights,
        settings=VALID_SETTINGS,
        metrics={"evaluate:val": {"auc": 0.95, "accuracy": 0.7, "log_loss": 0.2}, "evaluate:test": {"auc": 0.5}},
    )

    page = admin_client.get(reverse("admin:training_modelversion_change", args=[candidate.pk])).content.decode()

    assert f"{image_version.label} (active)" in page
    assert "<td>evaluate:val</td><td>auc</td><td>0.9000</td><td>0.9500</td><td>+0.0500 (better)</td>" in page
    assert "<td>evaluate:val</td><td>accuracy</td><td>0.8000</td><td>0.7000</td><td>-0.1000 (worse)</td>" in page
    assert "<td>log_loss</td><td>0.3000</td><td>0.2000</td><td>-0.1000 (better)</td>" in page
    # Only evaluations both versions have are compared: neither "training" nor "evaluate:test" here.
    assert "<td>training</td>" not in page and "<td>evaluate:test</td>" not in page


def test_roll_back_reactivates_the_previously_active_version(admin_client, tiny_models, tiny_image_weights):
    image_version, video_version = tiny_models
    candidate = model_version_register(
        kind="image",
        name="candidate",
        version="2.0.0",
        weights_path=tiny_image_weights,
        settings=VALID_SETTINGS,
        activate=True,
    )
    assert model_version_active(kind="image") == candidate

    response = admin_client.post(
        CHANGELIST_URL, {"action": "roll_back", "_selected_action": [candidate.pk, video_version.pk]}, follow=True
    )

    assert model_version_active(kind="image") == image_version
    assert model_version_active(kind="video") == video_version
    page = response.content.decode()
    assert "Rolled back" in page
    assert "No earlier video version was ever active." in page


def test_the_summary_prefers_held_out_metrics(admin_client, tiny_models):
    image_version, _video_version = tiny_models
    ModelVersion.objects.filter(pk=image_version.pk).update(
        metrics={"training": {"auc": 0.999}, "evaluate:test": {"auc": 0.876, "n": 40}}
    )

    page = admin_client.get(CHANGELIST_URL).content.decode()

    assert "auc=0.876, n=40" in page


def test_a_shipped_version_shows_the_shipped_plots(tiny_models):
    if not SHIPPED_MANIFEST.is_file():
        pytest.skip("no shipped models in ml/weights/ in this checkout")
    entry = read_manifest()[0]
    shipped = ModelVersion.objects.create(
        kind=entry["kind"], name=entry["name"], version=entry["version"], weights="weights/shipped.keras"
    )
    plots_dir = SHIPPED_MANIFEST.parent / "plots" / entry["kind"]

    plots = model_version_plots(shipped)

    assert plots == {path.name: path for path in plots_dir.glob("*.png") if path.name in plots}
    assert "roc.png" in plots and "confusion.png" in plots


def test_plots_are_for_staff_only_and_only_known_names(client, admin_client, alice, tiny_models):
    image_version, _video_version = tiny_models
    client.force_login(alice)

    refused = client.get(reverse("admin:training_modelversion_plot", args=[image_version.pk, "roc.png"]))
    unknown = admin_client.get(reverse("admin:training_modelversion_plot", args=[image_version.pk, "passwd.png"]))
    missing = admin_client.get(reverse("admin:training_modelversion_plot", args=[image_version.pk, "roc.png"]))

    assert refused.status_code == 302 and "login" in refused["Location"]
    assert unknown.status_code == 404
    assert missing.status_code == 404


def test_a_versions_metrics_and_settings_are_shown_as_tables(admin_client, tiny_models):
    image_version, _video_version = tiny_models
    ModelVersion.objects.filter(pk=image_version.pk).update(
        metrics={"evaluate:val": {"auc": 0.912345678, "per_file": [{"name": "a"}]}}
    )

    page = admin_client.get(reverse("admin:training_modelversion_change", args=[image_version.pk])).content.decode()

    assert '<th scope="row">evaluate:val.auc</th><td>0.912346</td>' in page
    assert '<th scope="row">evaluate:val.per_file</th><td>1 item</td>' in page
    assert '<th scope="row">crop_rule.size</th><td>48</td>' in page
    assert "<pre>" not in page
