"""Pieces of the registry mirror's admin: a paginator for huge lists, list filters and the alias form."""

from functools import cached_property
from typing import cast

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.core.validators import RegexValidator
from django.db import connection
from django.db.models import QuerySet

from .models import RegisteredModel


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` rows: a full ``COUNT(*)`` of a huge mirror would cost more than the page itself.

    Past the cap, an unfiltered list on PostgreSQL shows the planner's row estimate; anything else shows the cap
    (search or filter to reach further).
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        # The admin pages a queryset.
        rows = cast(QuerySet, self.object_list)
        capped = rows[: self.CAP + 1].count()
        if capped <= self.CAP:
            return capped
        if connection.vendor == "postgresql" and not rows.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [rows.model._meta.db_table],
                )
                row = cursor.fetchone()
            # -1 or a stale figure until PostgreSQL first analyses the table: never below the cap.
            estimate = int(row[0]) if row else -1
            return max(self.CAP, estimate)
        return self.CAP


class AliasFilter(admin.SimpleListFilter):
    title = "MLflow alias"
    parameter_name = "alias"

    def lookups(self, request, model_admin):
        names = {alias for aliases in RegisteredModel.objects.values_list("aliases", flat=True) for alias in aliases}
        return [(name, name) for name in sorted(names)]

    def queryset(self, request, queryset):
        if self.value():
            # The JSON list's text holds each alias in quotes: an exact element match on every database.
            return queryset.filter(aliases__icontains=f'"{self.value()}"')
        return queryset


class FormatFilter(admin.SimpleListFilter):
    title = "format"
    parameter_name = "format"

    def lookups(self, request, model_admin):
        return [("onnx", "ONNX"), ("sklearn", "scikit-learn")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(formats__icontains=f'"{self.value()}"')
        return queryset


class AliasForm(forms.Form):
    alias = forms.CharField(
        max_length=256,
        initial="champion",
        validators=[RegexValidator(r"^[A-Za-z][A-Za-z0-9_\-]*$", "A letter, then letters, digits, '_' or '-'.")],
    )
    force = forms.BooleanField(required=False)
