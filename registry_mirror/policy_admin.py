"""The admin of retraining policies: maintainers edit them here as through ``PUT /models/<name>/retrain-policy``."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from core.durations import duration_normalise
from core.errors import ApplicationError

from .models import RetrainPolicy
from .services import retrain_policy_set
from .services.policy import POLICY_FIELDS


class RetrainPolicyForm(forms.ModelForm):
    class Meta:
        model = RetrainPolicy
        fields = ["model_name", *POLICY_FIELDS]

    def _duration(self, field: str) -> str:
        try:
            return duration_normalise(self.cleaned_data.get(field) or "", field=field)
        except ApplicationError as exc:
            raise ValidationError(exc.message) from exc

    def clean_window(self) -> str:
        return self._duration("window")

    def clean_schedule(self) -> str:
        return self._duration("schedule")


@admin.register(RetrainPolicy)
class RetrainPolicyAdmin(admin.ModelAdmin):
    form = RetrainPolicyForm
    list_display = [
        "model_name",
        "enabled",
        "window",
        "schedule",
        "on_new_data",
        "on_drift",
        "degradation_factor",
        "last_scheduled_at",
        "updated_by",
    ]
    list_filter = ["enabled", "on_new_data", "on_drift"]
    search_fields = ["=model_name"]
    readonly_fields = ["last_scheduled_at", "updated_by", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # The name is the row's key: set once.
        return [*self.readonly_fields, "model_name"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Through the service, as the API: the schedule's clock starts when it is set.
        values = {name: form.cleaned_data[name] for name in POLICY_FIELDS if name in form.cleaned_data}
        saved = retrain_policy_set(name=obj.model_name, values=values, user=request.user)
        obj.pk, obj.last_scheduled_at, obj.updated_by = saved.pk, saved.last_scheduled_at, saved.updated_by
