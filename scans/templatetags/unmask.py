"""Template filters for the words and numbers every page shows the same way (see scans.wording)."""

from __future__ import annotations

from django import template

from scans.wording import percent_text

register = template.Library()


@register.filter(name="percent")
def percent(probability: float | None) -> str:
    """`{{ scan.fake_probability|percent }}`: "94.7%", "> 99.9%", "< 0.1%" or an em dash."""
    return percent_text(probability)
