"""factory_boy factories and small CSV builders for tests."""

import importlib
import io
import uuid

import factory
import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.migrations import RunPython

from sample_data.make_weather import make_weather


class UserFactory(factory.django.DjangoModelFactory):
    """A user in ``role`` (a group made by training's roles migration): ``UserFactory(role="maintainer")``."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = False

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(role_group(extracted))


def role_group(name: str) -> Group:
    """The role's group; a transactional test's flush removes what migrations made, so make it again then."""
    if not Group.objects.filter(name=name).exists():
        from django.apps import apps

        importlib.import_module("training.migrations.0003_roles").roles_create(apps, None)
        # And what later migrations gave the roles.
        importlib.import_module("training.migrations.0007_model_owners").model_access_grant(apps, None)
        importlib.import_module("core.migrations.0001_hashed_tokens").maintainers_manage_tokens(apps, None)
        importlib.import_module("inference.migrations.0002_prediction_caller").maintainers_feedback_all(apps, None)
        for granting in (
            "core.migrations.0002_webhooks",
            "training.migrations.0010_maintainers_see_series",
            "inference.migrations.0005_maintainers_see_trials",
            "training.migrations.0012_retrain_request_attempts",
        ):
            for operation in importlib.import_module(granting).Migration.operations:
                if isinstance(operation, RunPython):
                    operation.code(apps, None)
    return Group.objects.get(name=name)


def api_token(user, days: float | None = None) -> str:
    """A new API token of ``user``, as ``issue_token`` makes one (its value; the database keeps the digest)."""
    from core.tokens import token_create

    return token_create(user=user, days=days)[1]


class StaffUserFactory(UserFactory):
    is_staff = True
    is_superuser = True


def weather_frame(days: int = 120, seed: int = 7) -> pd.DataFrame:
    return make_weather(days=days, seed=seed)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def weather_csv(days: int = 120, seed: int = 7) -> bytes:
    return csv_bytes(weather_frame(days, seed))


# --- Registry mirror ------------------------------------------------------------------------------------------


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "registry_mirror.RegisteredModel"
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"mirrored_model_{n}")


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A mirrored version as a sync of an MDS training would write it (no MLflow behind it)."""

    class Meta:
        model = "registry_mirror.ModelVersion"

    registered_model = factory.SubFactory(RegisteredModelFactory)
    name = factory.SelfAttribute("registered_model.name")
    version = factory.Sequence(lambda n: n + 1)
    status = "READY"
    run_id = factory.Faker("hexify", text="^" * 32)
    experiment_id = "1"
    formats = ["onnx", "sklearn"]
    dataset_sha256 = factory.Faker("sha256")
    r2 = 0.91
    mae = 1.2
    rmse = 1.6
    onnx_max_abs_diff = 1e-5
    onnx_max_rel_diff = 1e-7
    metrics = factory.LazyAttribute(lambda o: {"r2": o.r2, "mae": o.mae, "rmse": o.rmse})
    params = factory.LazyFunction(lambda: {"n_estimators": "10", "max_depth": "12"})


def mlflow_version(
    name: str,
    *,
    metrics: dict[str, float] | None = None,
    run_tags: dict[str, str] | None = None,
    version_tags: dict[str, str] | None = None,
    run_id: str | None = None,
    served: bool = False,
):
    """Register a version in the MLflow store of the current settings directly, without training a model.

    Returns the MLflow ``ModelVersion``; its run carries ``metrics`` and ``run_tags``. With ``served`` MDS's
    database records it as a version MDS trained (``served_version_record``); without, it is external.
    """
    from mlflow.entities import Metric, RunTag
    from mlflow.exceptions import MlflowException

    from registry_mirror import gateway

    client = gateway.client()
    if run_id is None:
        run_id = client.create_run(gateway.experiment_id()).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(key, value, 0, 0) for key, value in (metrics or {}).items()],
            tags=[RunTag(key, value) for key, value in (run_tags or {}).items()],
        )
        client.set_terminated(run_id)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    created = client.create_model_version(name, source, run_id=run_id, tags=version_tags or {})
    if served:
        served_version_record(name, int(created.version))
    return created


def served_version_record(name: str, version: int):
    """Record ``version`` of ``name`` as trained by MDS, so it may be served and promoted (its files unchecked)."""
    from registry_mirror.models import TrainedVersion

    return TrainedVersion.objects.create(
        job_key=uuid.uuid4(), name=name, version=version, sklearn_sha256="0" * 64, onnx_sha256="0" * 64
    )


def mlflow_constant_version(name: str, *, value: float = 1337.0, drop_feature: str | None = None) -> int:
    """Register straight in MLflow (as anyone with write access to it could) a version of ``name`` whose ONNX
    model predicts ``value`` for every row, with the signature of the sample data's features (less
    ``drop_feature``); MDS's database records nothing of it. Returns its number."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from registry_mirror import gateway
    from training import ml

    data = ml.prepare_data(weather_frame(60), target="target", timestamp="timestamp")
    features = [feature for feature in data.feature_names if feature != drop_feature]
    X = data.X[:, [data.feature_names.index(feature) for feature in features]]
    estimator = LinearRegression().fit(X, data.y)
    estimator.coef_, estimator.intercept_ = np.zeros_like(estimator.coef_), value
    example = pd.DataFrame(X[:2].astype("float64"), columns=features)
    model = gateway.TrainedModel(estimator, ml.to_onnx(estimator, len(features)), example, params={}, metrics={})
    return gateway.model_version_register(job_key=str(uuid.uuid4()), model_name=name, model=model).version
