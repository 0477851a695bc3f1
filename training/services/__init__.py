"""Starting, dispatching, running and finishing training jobs.

``bounds`` sizes a forest from the settings' budget; ``datasets`` accepts a request (the file and its job, stored
together); ``dispatch`` gets jobs to a worker, now and again later if the broker could not take them;
``execution`` runs one under a lease (``leases``) that keeps two executions from running the same job;
``embedded`` runs them on a thread of the web process in embedded mode; ``jobs``
reads and cancels them for clients. ``transitions`` is the one module that changes a job's state.
"""

from .bounds import training_params_bound, training_size_budget
from .datasets import dataset_create, dataset_inspect, training_job_create, training_job_start
from .dispatch import training_job_dispatch, training_job_undispatched, training_jobs_dispatch
from .embedded import background_training, embedded_dispatcher_connect, embedded_jobs_resume
from .execution import training_job_execute, training_job_fail
from .jobs import trained_models, training_job_cancel, training_job_wait, training_wait_slot
from .leases import Lease, database_retry, lease_dead_reason, this_process

__all__ = [
    "Lease",
    "background_training",
    "embedded_dispatcher_connect",
    "embedded_jobs_resume",
    "dataset_create",
    "dataset_inspect",
    "database_retry",
    "lease_dead_reason",
    "this_process",
    "trained_models",
    "training_job_cancel",
    "training_job_create",
    "training_job_dispatch",
    "training_job_execute",
    "training_job_fail",
    "training_job_start",
    "training_job_undispatched",
    "training_job_wait",
    "training_jobs_dispatch",
    "training_wait_slot",
    "training_params_bound",
    "training_size_budget",
]
