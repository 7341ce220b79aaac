"""Account forms: the extra sign-up field and the profile."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.models import User


def clean_nickname_value(value: str) -> str:
    """Trim a nickname and refuse one that is empty after trimming."""
    value = " ".join((value or "").split())
    if not value:
        raise forms.ValidationError(_("Please choose a nickname."))
    return value


class SignupExtraForm(forms.Form):
    """Fields allauth's sign-up form adds to e-mail and password."""

    nickname = forms.CharField(
        label=_("Nickname"),
        max_length=40,
        help_text=_("The name other people see."),
        widget=forms.TextInput(attrs={"autocomplete": "nickname"}),
    )

    def clean_nickname(self) -> str:
        return clean_nickname_value(self.cleaned_data["nickname"])

    def signup(self, request: HttpRequest, user: User) -> None:
        """Called by allauth once the user exists."""
        user.nickname = self.cleaned_data["nickname"]
        user.save(update_fields=["nickname"])


class ProfileForm(forms.ModelForm[User]):
    """What a person may change about themselves."""

    class Meta:
        model = User
        fields = ("nickname", "organisation", "language")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["nickname"].widget.attrs["autocomplete"] = "nickname"
        self.fields["organisation"].widget.attrs["autocomplete"] = "organization"
        language = self.fields["language"]
        assert isinstance(language, forms.ChoiceField)  # a CharField with choices
        language.choices = [("", _("Same as my browser")), *settings.LANGUAGES]

    def clean_nickname(self) -> str:
        return clean_nickname_value(self.cleaned_data["nickname"])
