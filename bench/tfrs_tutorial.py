"""TensorFlow Recommenders' multitask tutorial on MovieLens 100K, timed: the reference Tandem must beat.

Why: the issue states TFRS 0.7.7 needs 35–65 s of training for this run on our 2-core machine (about
20 s with training-time metrics off); Tandem must do the whole run at least 5× faster than the fastest form
of TFRS, measured side by side. This script runs the tutorial as written
(https://www.tensorflow.org/recommenders/examples/multitask): user_id and movie_title, embedding dim 32, rating
head 256-128-1, tf.random.set_seed(42), one shuffle of 100K with seed 42 and no reshuffle, 80/20, Adagrad 0.1,
batch 8192, 3 epochs, FactorizedTopK over all 1,682 movies. It reads the same ml-100k files Tandem reads
(tensorflow-datasets would need the internet), so rows come in file order rather than TFDS's order and the
split differs from the tutorial's, as it also differs from Tandem's.

Modes: `--metrics on` computes the retrieval and ranking metrics on every training batch, as the tutorial
is written (FactorizedTopK scores the whole catalog per batch); `--metrics off` passes
compute_metrics=not training, as TFRS recommends for speed. Metrics are always computed on the test set.

It runs in its own virtualenv (never the project's; TensorFlow is not a Tandem dependency):

    bench/out/tfrs-venv/bin/python bench/tfrs_tutorial.py --metrics off

It prints process start → metrics, training time, examples/s, peak memory, top-100 accuracy and RMSE, and a
last line `RESULT {json}` for bench/compare_tfrs.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from _common import ML100K, seconds_since_process_start

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ info logs

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

IMPORTED = seconds_since_process_start()


def read_movielens(folder) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(ratings as the tutorial's features: user_id, movie_title, user_rating; every movie's title)."""
    titles = {}
    with open(folder / "u.item", encoding="latin-1") as f:
        for line in f:
            movie_id, title = line.split("|", 2)[:2]
            titles[movie_id] = title
    users, movies, ratings = [], [], []
    with open(folder / "u.data", encoding="latin-1") as f:
        for line in f:
            user, movie, rating, _ = line.rstrip("\n").split("\t")
            users.append(user)
            movies.append(titles[movie])
            ratings.append(float(rating))
    features = {
        "movie_title": np.array(movies, dtype=object),
        "user_id": np.array(users, dtype=object),
        "user_rating": np.array(ratings, dtype=np.float32),
    }
    return features, np.array(list(titles.values()), dtype=object)


class MovielensModel(tfrs.models.Model):
    """The tutorial's model; `metrics_in_training=False` skips the per-batch metrics while training."""

    def __init__(self, rating_weight: float, retrieval_weight: float, unique_movie_titles, unique_user_ids,
                 movies: tf.data.Dataset, metrics_in_training: bool) -> None:  # fmt: skip
        super().__init__()
        embedding_dimension = 32
        self.movie_model = tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=unique_movie_titles, mask_token=None),
                tf.keras.layers.Embedding(len(unique_movie_titles) + 1, embedding_dimension),
            ]
        )
        self.user_model = tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=unique_user_ids, mask_token=None),
                tf.keras.layers.Embedding(len(unique_user_ids) + 1, embedding_dimension),
            ]
        )
        self.rating_model = tf.keras.Sequential(
            [
                tf.keras.layers.Dense(256, activation="relu"),
                tf.keras.layers.Dense(128, activation="relu"),
                tf.keras.layers.Dense(1),
            ]
        )
        self.rating_task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(),
            metrics=[tf.keras.metrics.RootMeanSquaredError()],
        )
        self.retrieval_task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=movies.batch(128).map(self.movie_model))
        )
        self.rating_weight = rating_weight
        self.retrieval_weight = retrieval_weight
        self.metrics_in_training = metrics_in_training

    def call(self, features):
        user_embeddings = self.user_model(features["user_id"])
        movie_embeddings = self.movie_model(features["movie_title"])
        return (
            user_embeddings,
            movie_embeddings,
            self.rating_model(tf.concat([user_embeddings, movie_embeddings], axis=1)),
        )

    def compute_loss(self, features, training=False):
        ratings = features.pop("user_rating")
        user_embeddings, movie_embeddings, rating_predictions = self(features)
        compute_metrics = self.metrics_in_training or not training
        rating_loss = self.rating_task(labels=ratings, predictions=rating_predictions, compute_metrics=compute_metrics)
        retrieval_loss = self.retrieval_task(user_embeddings, movie_embeddings, compute_metrics=compute_metrics)
        return self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss


class EpochTimer(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = [*getattr(self, "seconds", []), time.perf_counter() - self.started]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", choices=["on", "off"], default="on", help="metrics on training batches")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rating-weight", type=float, default=1.0)
    parser.add_argument("--retrieval-weight", type=float, default=1.0)
    args = parser.parse_args()

    features, all_titles = read_movielens(ML100K)
    ratings = tf.data.Dataset.from_tensor_slices(features)
    movies = tf.data.Dataset.from_tensor_slices(all_titles)

    tf.random.set_seed(42)
    shuffled = ratings.shuffle(100_000, seed=42, reshuffle_each_iteration=False)
    train = shuffled.take(80_000)
    test = shuffled.skip(80_000).take(20_000)
    unique_movie_titles = np.unique(all_titles.astype(str))
    unique_user_ids = np.unique(features["user_id"].astype(str))

    model = MovielensModel(args.rating_weight, args.retrieval_weight, unique_movie_titles, unique_user_ids,
                           movies, metrics_in_training=args.metrics == "on")  # fmt: skip
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    cached_train = train.shuffle(100_000).batch(8192).cache()
    cached_test = test.batch(4096).cache()

    timer = EpochTimer()
    started = time.perf_counter()
    model.fit(cached_train, epochs=args.epochs, verbose=0, callbacks=[timer])
    training = time.perf_counter() - started
    started = time.perf_counter()
    metrics = model.evaluate(cached_test, return_dict=True, verbose=0)
    evaluation = time.perf_counter() - started
    result = {
        "mode": f"metrics {args.metrics}",
        "tensorflow": tf.__version__,
        "tfrs": tfrs.__version__,
        "import_s": IMPORTED,
        "training_s": training,
        "epoch_s": timer.seconds,
        "examples_per_s": 80_000 * args.epochs / training,
        "evaluation_s": evaluation,
        "start_to_metrics_s": seconds_since_process_start(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "top_100_accuracy": metrics["factorized_top_k/top_100_categorical_accuracy"],
        "rmse": metrics["root_mean_squared_error"],
    }
    print(f"TFRS {tfrs.__version__} on TensorFlow {tf.__version__}, training-time metrics {args.metrics}")
    print(f"  imports done            {result['import_s']:.2f} s after process start")
    print(f"  training ({args.epochs} epochs)     {training:.2f} s ({result['examples_per_s']:,.0f} examples/s)")
    print(f"  epochs                  {', '.join(f'{s:.2f}' for s in timer.seconds)} s")
    print(f"  test evaluation         {evaluation:.2f} s")
    print(f"  process start → metrics {result['start_to_metrics_s']:.2f} s")
    print(f"  peak memory             {result['peak_rss_mib']:.0f} MiB")
    print(f"  top-100 accuracy        {result['top_100_accuracy']:.3f}")
    print(f"  RMSE                    {result['rmse']:.3f}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
