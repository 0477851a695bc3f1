"""The engines one version predicts with: the same answer whether a batch runs in one call or split across threads,
scikit-learn's to the bit where they say ``sklearn``, and an ONNX session that closes and opens again."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from core.errors import MlflowUnavailable
from inference.compiled_forest import walk_library
from inference.engines import CompiledForestEngine, OnnxEngine, SklearnEngine
from inference.engines.onnx import open_session
from inference.engines.pool import SPLIT_MIN_ROWS
from training.ml import to_onnx

needs_walk = pytest.mark.skipif(walk_library() is None, reason="the compiled walk is not built (make install)")


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 4)).astype(np.float32)
    return RandomForestRegressor(12, max_depth=8, random_state=0).fit(X, np.sin(X[:, 0]) * 100 + X[:, 1] * X[:, 2])


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(1).normal(scale=1.5, size=(SPLIT_MIN_ROWS + 77, 4)).astype(np.float32)


@pytest.fixture
def onnx_engine(model, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(to_onnx(model, 4).SerializeToString())
    return OnnxEngine(path, open_session(path))


def forest_engines(model):
    engines = [SklearnEngine(model, nbytes=1)]
    if walk_library() is not None:
        engines.append(CompiledForestEngine.packed(engines[0].trees, model.n_features_in_))
    return engines


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_forest_engines_give_sklearns_predictions_and_moments_on_any_number_of_threads(model, X, threads):
    # given: the trees summed in order (n_jobs=None)
    in_order = model.predict(X)
    expected_mean, expected_spread = SklearnEngine(model, nbytes=1).moments(X, 1)

    for engine in forest_engines(model):
        # when
        predicted = engine.predict(X, threads)
        mean, spread = engine.moments(X, threads)

        # then: to the bit in one call and for rows split across threads; trees split across threads are summed
        # in another order
        assert engine.format == "sklearn"
        if threads == 1 or isinstance(engine, CompiledForestEngine):
            assert np.array_equal(predicted, in_order), type(engine).__name__
            assert np.array_equal(mean, expected_mean), type(engine).__name__
            assert np.array_equal(spread, expected_spread), type(engine).__name__
        np.testing.assert_allclose(predicted, in_order, rtol=1e-12)
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
        np.testing.assert_allclose(spread, expected_spread, rtol=1e-9)
    np.testing.assert_allclose(expected_mean, in_order, rtol=1e-12)
    assert np.all(expected_spread > 0)


def test_contributions_split_across_threads_add_up_to_the_prediction(model, X):
    # given
    engine = SklearnEngine(model, nbytes=1)

    # when
    base, one = engine.contributions(X, 1)
    _, three = engine.contributions(X, 3)

    # then
    np.testing.assert_allclose(one, three, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(base + one.sum(axis=1), model.predict(X), rtol=1e-9)


def test_the_onnx_engine_splits_a_batch_without_changing_it_and_reopens_its_closed_session(onnx_engine, model, X):
    # given
    whole = onnx_engine.predict(X, 1)

    # when
    onnx_engine.close()
    closed = onnx_engine.in_memory
    split = onnx_engine.predict(X, 3)

    # then
    assert (onnx_engine.format, closed, onnx_engine.in_memory) == ("onnx", False, True)
    assert np.array_equal(whole, split)
    np.testing.assert_allclose(whole, model.predict(X), rtol=1e-4, atol=1e-3)
    assert onnx_engine.nbytes == onnx_engine.path.stat().st_size


def test_a_closed_onnx_session_whose_file_is_gone_asks_for_a_retry(onnx_engine, X):
    # given: the version was evicted, its files removed, after the session was closed
    onnx_engine.close()
    onnx_engine.path.unlink()

    # when / then
    with pytest.raises(MlflowUnavailable, match="evicted"):
        onnx_engine.predict(X[:1], 1)


@needs_walk
def test_the_compiled_engine_counts_no_bytes_of_its_own(model):
    # the pickle's engine counts the file both were loaded from
    (sklearn, compiled) = forest_engines(model)
    assert (sklearn.nbytes, compiled.nbytes) == (1, 0)
