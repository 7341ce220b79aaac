"""Forms of room pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class RoomForm(forms.Form):
    """Create a room, or rename one (`private` is ignored then)."""

    name = forms.CharField(label=_("Name"), max_length=120)
    topic = forms.CharField(label=_("Topic"), max_length=200, required=False)
    # Unchecked (or missing) means public, so the simplest request makes a findable room.
    private = forms.BooleanField(
        label=_("Private: only people with the invite link can join"), required=False
    )
