"""The size a forest may take: the request's params bounded from the settings' budget and checked against the
ceilings, once up front (rows unknown) and again by the worker with the data's own size."""

from django.conf import settings

from .. import ml, sizing


def training_size_budget() -> sizing.SizeBudget:
    """The size budget of forests whose request leaves their size open, from settings."""
    return sizing.SizeBudget(
        max_nodes=settings.MDS_MAX_MODEL_NODES,
        max_samples=settings.MDS_TRAIN_MAX_SAMPLES,
        memory_bytes=settings.MDS_TRAIN_MEMORY_BUDGET,
    )


def training_params_bound(
    *, params: ml.TrainingParams, n_samples: int | None = None, n_features: int = 8
) -> tuple[ml.TrainingParams, sizing.SizeEstimate]:
    """``params`` with the size bounds they leave open taken from the budget, and their size estimate.

    Raises:
        ModelTooLarge: the forest would pass ONNX's 2 GB or the memory budget.
    """
    budget = training_size_budget()
    n_train = None if n_samples is None else ml.chronological_split(n_samples, params.test_size)
    bounded = sizing.bounded_params(params, budget=budget, n_samples=n_train)
    return bounded, sizing.size_check(bounded, budget=budget, n_samples=n_samples, n_features=n_features)
