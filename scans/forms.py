"""Dashboard forms: the upload form and the history filters."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from scans.media_types import UPLOAD_ACCEPT
from scans.models import Scan


class ScanUploadForm(forms.Form):
    """One image or video file; only its presence is checked here, the content is judged by scan_create."""

    REQUIRED_MESSAGE = "Choose a photo or a video to upload."

    file = forms.FileField(
        label="Photo or video",
        required=False,
        widget=forms.FileInput(attrs={"accept": UPLOAD_ACCEPT}),
        error_messages={"empty": "The file is empty."},
    )
    source_url = forms.URLField(
        label="Or paste a link to an image, a video, or a page with one",
        required=False,
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/post-with-a-video", "autocomplete": "off"}),
        error_messages={"invalid": "Paste a full http:// or https:// link."},
    )
    case = forms.TypedChoiceField(
        label="File into case",
        required=False,
        coerce=uuid.UUID,
        empty_value=None,
        choices=[],
        error_messages={"invalid_choice": "Choose one of your teams' open cases, or none."},
    )

    def __init__(self, *args: Any, case_choices: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        """`case_choices`: (case id, label) of the open cases the user may file into."""
        super().__init__(*args, **kwargs)
        self.fields["case"].choices = [("", "None: my own scans"), *(case_choices or [])]
        self.has_case_choices = bool(case_choices)

    def clean(self) -> dict[str, Any]:
        """A file or a link: one of them, not both."""
        cleaned = super().clean()
        if "file" in self.errors or "source_url" in self.errors:
            return cleaned
        if cleaned.get("file") and cleaned.get("source_url"):
            self.add_error("source_url", "Upload a file or paste a link, not both.")
        elif not cleaned.get("file") and not cleaned.get("source_url"):
            self.add_error("file", self.REQUIRED_MESSAGE)
        return cleaned


def _with_any(choices: list[tuple[str, str]], any_label: str) -> list[tuple[str, str]]:
    return [("", any_label), *choices]


class ScanFilterForm(forms.Form):
    """History filters from GET parameters; an invalid value is simply not applied."""

    status = forms.ChoiceField(required=False, choices=_with_any(Scan.Status.choices, "Any status"))
    verdict = forms.ChoiceField(required=False, choices=_with_any(Scan.Verdict.choices, "Any verdict"))
    kind = forms.ChoiceField(required=False, choices=_with_any(Scan.Kind.choices, "Images and videos"))
    q = forms.CharField(
        required=False,
        max_length=100,
        strip=True,
        label="File name",
        widget=forms.TextInput(attrs={"placeholder": "Search file names", "type": "search"}),
    )
    date_from = forms.DateField(
        required=False, label="Uploaded from", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    date_to = forms.DateField(
        required=False, label="Uploaded until", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def selected_filters(self) -> dict[str, Any]:
        """The filters to pass to scan_list_for_user: the valid, non-empty ones."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {name: value for name, value in cleaned.items() if value}


class ScanIdsField(forms.Field):
    """A list of scan ids from repeated form values (`scan_ids=<uuid>&scan_ids=<uuid>`)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": "One of the ticked scans is not a valid scan id."}

    def to_python(self, value: Any) -> list[uuid.UUID]:
        try:
            return [uuid.UUID(str(raw)) for raw in value or []]
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class ScanBulkDeleteForm(forms.Form):
    """The scans ticked in the history for deletion; ids that are not the user's are ignored by the service."""

    MAX_SCANS = 100

    scan_ids = ScanIdsField(error_messages={"required": "Tick the scans to delete first."})

    def clean_scan_ids(self) -> list[uuid.UUID]:
        scan_ids = self.cleaned_data["scan_ids"]
        if len(scan_ids) > self.MAX_SCANS:
            raise forms.ValidationError(f"At most {self.MAX_SCANS} scans can be deleted at once.")
        return scan_ids
