"""What other apps may hear from the registry mirror without it knowing them."""

from django.dispatch import Signal

# Sent once a move of an alias is committed to MDS's promotion record, with ``model_name``: a process that caches
# what aliases serve forgets that model's at once (inference.model_cache).
aliases_moved = Signal()
