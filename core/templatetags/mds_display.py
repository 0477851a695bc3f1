"""``{% load mds_display %}``: ``core.display`` in templates, ``{{ value|number }}`` and ``{{ time|when }}``."""

from django import template

from core import display

register = template.Library()
register.filter("number", display.number)
register.filter("when", display.when)
