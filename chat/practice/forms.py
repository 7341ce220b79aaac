"""Forms of practice pages."""

from __future__ import annotations

from django import forms

from chat.models import Conversation


class RenameForm(forms.ModelForm[Conversation]):
    """A practice conversation's new title."""

    class Meta:
        model = Conversation
        fields = ("title",)
