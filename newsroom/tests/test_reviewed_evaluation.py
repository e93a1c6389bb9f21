"""Reviewer labels measure the models: figures of each version on the scans people confirmed fake or real (served
or scored in shadow mode), in the admin's comparison, and the labelled media exported for evaluate_model."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.urls import reverse

from ml.datasets import IMAGE_SUFFIXES, labelled_files
from newsroom.evaluation import reviewed_scan_metrics
from newsroom.models import ScanReview
from scans.models import Scan
from scans.tests.uploads import image_bytes, make_scan_row
from training.models import ModelVersion, ShadowResult
from training.tests.versions import candidate_version

pytestmark = pytest.mark.django_db

# (label, fake probability the active version gave, the candidate's in shadow mode)
LABELLED = [
    ("confirmed_fake", 0.9, 0.95),
    ("confirmed_fake", 0.6, 0.8),
    ("confirmed_real", 0.2, 0.1),
    ("confirmed_real", 0.7, 0.3),
]


def _review(scan: Scan, label: str, reviewer: str = "carol") -> None:
    ScanReview.objects.create(scan=scan, label=label, reviewer_name=reviewer)


@pytest.fixture
def labelled(alice, tiny_models):
    """Four labelled photo scans of the active image version, each rescored by a shadow candidate; and scans that
    must not count: disputed, unlabelled, a video."""
    image_version, _video_version = tiny_models
    ModelVersion.objects.filter(pk=image_version.pk).update(settings={**image_version.settings, "threshold": 0.5})
    image_version.refresh_from_db()
    candidate = candidate_version(image_version, version="2.0.0", threshold=0.5)
    scans = []
    for label, served, shadow in LABELLED:
        scan = make_scan_row(
            alice, status=Scan.Status.DONE, verdict="fake", fake_probability=served, image_model_version=image_version
        )
        scan.file.save("photo.jpg", ContentFile(image_bytes("JPEG")), save=True)
        _review(scan, label)
        ShadowResult.objects.create(
            scan=scan,
            candidate=candidate,
            reference=image_version,
            kind="image",
            reference_verdict="fake",
            verdict="fake",
            fake_probability=shadow,
            agreed=True,
        )
        scans.append(scan)
    # The last label is what counts: first called fake, then confirmed real.
    ScanReview.objects.filter(scan=scans[3]).update(label="confirmed_fake")
    _review(scans[3], "confirmed_real", reviewer="alice")
    disputed = make_scan_row(
        alice, status=Scan.Status.DONE, fake_probability=0.99, image_model_version=image_version, sha256="ee" * 32
    )
    _review(disputed, "disputed")
    make_scan_row(alice, status=Scan.Status.DONE, fake_probability=0.5, image_model_version=image_version)
    return image_version, candidate, scans, disputed


def test_each_version_is_measured_on_the_labelled_scans_it_scored(labelled):
    active, candidate, _scans, _disputed = labelled

    served = reviewed_scan_metrics(model_version=active)
    shadow = reviewed_scan_metrics(model_version=candidate)

    assert (served["n"], served["n_fake"], served["n_real"], served["from_shadow"]) == (4, 2, 2, 0)
    assert served["auc"] == pytest.approx(0.75)
    assert served["accuracy"] == pytest.approx(0.75)
    assert served["false_positive_rate"] == pytest.approx(0.5)
    assert (shadow["n"], shadow["from_shadow"]) == (4, 4)
    assert (shadow["auc"], shadow["accuracy"], shadow["false_positive_rate"]) == (1.0, 1.0, 0.0)


def test_a_version_nobody_reviewed_has_no_figures(tiny_models):
    _image_version, video_version = tiny_models

    figures = reviewed_scan_metrics(model_version=video_version)

    assert figures["n"] == 0 and figures["auc"] is None and figures["false_positive_rate"] is None


def test_with_one_class_only_the_auc_is_not_made_up(alice, tiny_models):
    image_version, _video_version = tiny_models
    ModelVersion.objects.filter(pk=image_version.pk).update(settings={**image_version.settings, "threshold": 0.5})
    image_version.refresh_from_db()
    scan = make_scan_row(alice, status=Scan.Status.DONE, fake_probability=0.8, image_model_version=image_version)
    _review(scan, "confirmed_fake")

    figures = reviewed_scan_metrics(model_version=image_version)

    assert figures["n"] == 1 and figures["auc"] is None and figures["false_positive_rate"] is None
    assert figures["accuracy"] == 1.0


def test_the_admin_compares_a_candidate_with_the_active_version_on_reviewed_scans(admin_client, labelled):
    active, candidate, _scans, _disputed = labelled

    page = admin_client.get(reverse("admin:training_modelversion_change", args=[candidate.pk])).content.decode()

    assert "4 labelled scans (2 confirmed fake, 2 confirmed real; 4 scored in shadow mode)" in page
    assert "<td>reviewed scans</td><td>auc</td><td>0.7500</td><td>1.0000</td><td>+0.2500 (better)</td>" in page
    assert "<td>reviewed scans</td><td>accuracy</td><td>0.7500</td><td>1.0000</td><td>+0.2500 (better)</td>" in page
    assert (
        "<td>reviewed scans</td><td>false_positive_rate</td><td>0.5000</td><td>0.0000</td><td>-0.5000 (better)</td>"
        in page
    )
    assert f"{active.label} (active)" in page


def test_the_activation_warning_counts_a_worse_reviewed_figure(admin_client, labelled):
    active, candidate, _scans, _disputed = labelled
    # Make the candidate worse than the active version on the reviewed scans.
    ShadowResult.objects.filter(candidate=candidate).update(fake_probability=0.99)

    page = admin_client.post(
        reverse("admin:training_modelversion_changelist"),
        {"action": "activate", "_selected_action": [candidate.pk]},
    ).content.decode()

    assert "data-activation-worse" in page
    assert "false_positive_rate on reviewed scans (0.5000 → 1.0000)" in page
    assert "accuracy on reviewed scans (0.7500 → 0.5000)" in page
    active.refresh_from_db()
    assert active.is_active


def test_export_reviewed_writes_the_layout_evaluate_model_reads(labelled, tmp_path):
    _active, _candidate, scans, disputed = labelled
    out = tmp_path / "reviewed"
    stdout, stderr = io.StringIO(), io.StringIO()

    call_command("export_reviewed", "--out", str(out), stdout=stdout, stderr=stderr)

    found = {path.stem: label for path, label in labelled_files(out, IMAGE_SUFFIXES)}
    assert found == {str(scans[0].pk): 1, str(scans[1].pk): 1, str(scans[2].pk): 0, str(scans[3].pk): 0}
    assert str(disputed.pk) not in found
    assert (out / "fake" / f"{scans[0].pk}.jpg").read_bytes() == image_bytes("JPEG")
    assert "2 fake and 2 real files" in stdout.getvalue()
    manifest = list(csv.DictReader((out / "reviewed.csv").open(encoding="utf-8")))
    assert {row["scan"]: (row["label"], row["reviewer"]) for row in manifest}[str(scans[3].pk)] == (
        "confirmed_real",
        "alice",
    )


def test_export_reviewed_reports_labelled_scans_whose_file_is_gone(alice, tiny_models, tmp_path):
    image_version, _video_version = tiny_models
    gone = make_scan_row(alice, status=Scan.Status.DONE, fake_probability=0.9, image_model_version=image_version)
    _review(gone, "confirmed_fake")
    stderr = io.StringIO()

    call_command(
        "export_reviewed", "--out", str(tmp_path / "out"), "--kind", "image", stdout=io.StringIO(), stderr=stderr
    )

    assert f"1 labelled scans have no stored file any more: {gone.pk}" in stderr.getvalue()
    assert not any((tmp_path / "out" / "fake").iterdir())


def test_export_reviewed_refuses_a_file_as_the_output(tmp_path, db):
    target = tmp_path / "not-a-folder"
    target.write_text("x")

    with pytest.raises(Exception, match="is a file, not a folder"):
        call_command("export_reviewed", "--out", str(target))
