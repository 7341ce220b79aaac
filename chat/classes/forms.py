"""Forms of live classes."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from chat.models import Persona


class ClassForm(forms.Form):
    """A new class: a title and its questions (typed in, or a coach's question bank)."""

    title = forms.CharField(label=_("Title"), max_length=120)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    questions = forms.CharField(
        label=_("Questions, one per line"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
    )
    persona = forms.ModelChoiceField(
        label=_("Or take the questions of"),
        queryset=Persona.objects.filter(is_active=True).exclude(questions=""),
        required=False,
    )
    seconds_per_question = forms.IntegerField(
        label=_("Seconds per question (optional)"), required=False, min_value=10, max_value=3600
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not str(data.get("questions") or "").strip() and not data.get("persona"):
            raise forms.ValidationError(_("Type at least one question, or pick a question bank."))
        return data


class JoinForm(forms.Form):
    """The join code a learner types (any case, spaces ignored)."""

    code = forms.CharField(label=_("Join code"), max_length=20)


class EnrolForm(forms.Form):
    """Enrol everyone of an organisation or department."""

    organisation = forms.CharField(label=_("Organisation or department"), max_length=120)
