"""A registered model's admin page: its retraining policy, dataset series, running trial and trial decisions."""

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from inference.models import Trial
from registry_mirror.models import RetrainPolicy
from tests.factories import RegisteredModelFactory, UserFactory, weather_csv
from training.models import Dataset, DatasetSeries, SeriesSegment

pytestmark = pytest.mark.django_db


@pytest.fixture
def maintainer_client(client):
    maintainer = UserFactory(role="maintainer", is_staff=True)
    client.force_login(maintainer)
    return client


def model_page(client, model) -> str:
    response = client.get(f"/admin/registry_mirror/registeredmodel/{model.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_models_page_shows_its_policy_series_running_trial_and_decisions(maintainer_client):
    # given
    model = RegisteredModelFactory(name="weather_loop")
    RetrainPolicy.objects.create(model_name=model.name, enabled=True, schedule="7d", degradation_factor=1.5)
    dataset = Dataset.objects.create(
        file=ContentFile(weather_csv(), name="first.csv"),
        original_name="first.csv",
        sha256="0" * 64,
        size_bytes=100,
        n_rows=120,
        n_columns=6,
    )
    series = DatasetSeries.objects.create(model_name=model.name, target_column="target", timestamp_column="timestamp")
    SeriesSegment.objects.create(series=series, dataset=dataset, position=0, n_rows=120)
    Trial.objects.create(
        model_name=model.name,
        champion_version=1,
        challenger_version=2,
        status=Trial.Status.PROMOTED,
        reason="the challenger's MAE is lower",
        ended_at=timezone.now(),
        figures={"paired_rows": 240},
    )
    Trial.objects.create(model_name=model.name, champion_version=2, challenger_version=3, mode="canary", share=0.2)

    # when
    page = model_page(maintainer_client, model)

    # then
    assert "Retraining policy" in page and "× 1.5" in page and "7d" in page
    assert "<h2>Dataset series</h2>" in page and "first.csv" in page and "120 rows" in page
    assert "<h2>Running trial</h2>" in page and "v3 against v2" in page
    assert "<h2>Trial decisions</h2>" in page and "Promoted" in page and "the challenger&#x27;s MAE is lower" in page


def test_a_model_without_policy_offers_a_maintainer_to_set_one(maintainer_client):
    # given
    model = RegisteredModelFactory(name="weather_plain")

    # when
    page = model_page(maintainer_client, model)
    form = maintainer_client.get(f"/admin/registry_mirror/retrainpolicy/add/?model_name={model.name}")

    # then
    assert "retrained only on request" in page and "/admin/registry_mirror/retrainpolicy/add/" in page
    assert "<h2>Running trial</h2>" not in page and "<h2>Dataset series</h2>" not in page
    assert form.status_code == 200 and 'value="weather_plain"' in form.content.decode()
