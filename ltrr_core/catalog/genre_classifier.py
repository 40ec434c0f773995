"""Genre classifier for entities that no tag describes.

Trained on entities whose genre came from tags (FMA's real genre labels and Last.fm tags
mapped to the same taxonomy). Input is the entity's own text (title, artists, album), never
its tags, so it can label what the tags leave empty. TF-IDF over word and character n-grams
with a linear model was chosen over sentence embeddings: it trains in seconds on 2 cores,
needs no encoder pass before the index build, and artist-name character n-grams are what
carries genre in titles. Held-out rows come from artists never seen in training (a group
split), which is the situation the classifier faces on unlinked entities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import FeatureUnion, Pipeline

from ..config import GenreClassifierConfig


class GenreClassifier:
    def __init__(self, config: GenreClassifierConfig):
        self.config = config

    def _pipeline(self) -> Pipeline:
        half = self.config.max_features // 2
        features = FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=half, sublinear_tf=True)),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=(2, 4), min_df=3, max_features=half, sublinear_tf=True
                    ),
                ),
            ]
        )
        # Logistic loss by SGD: the same model as LogisticRegression, ~4x faster to fit here.
        model = SGDClassifier(
            loss="log_loss",
            alpha=self.config.alpha,
            max_iter=self.config.epochs,
            tol=None,
            class_weight="balanced",
            random_state=self.config.seed,
        )
        return Pipeline([("features", features), ("model", model)])

    def fit(self, texts: list[str], labels: list[str]) -> GenreClassifier:
        if len(set(labels)) < 2:
            raise ValueError(f"the genre classifier needs at least 2 genres to learn, got {sorted(set(labels))}")
        self.pipeline_ = self._pipeline().fit(texts, labels)
        return self

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """(best genre, its probability) per text."""
        probabilities = self.pipeline_.predict_proba(texts)
        best = probabilities.argmax(axis=1)
        classes = self.pipeline_.classes_
        return [classes[i] for i in best], probabilities[np.arange(len(texts)), best]

    def fit_evaluate(self, texts: list[str], labels: list[str], groups: list[str]) -> dict[str, Any]:
        """Held-out precision/recall per genre (group split by artist), then fit on everything."""
        if len(texts) < 50 or len(set(labels)) < 2:
            self.fit(texts, labels) if len(set(labels)) >= 2 else None
            return {"evaluated": False, "reason": f"only {len(texts)} labelled entities"}
        split = GroupShuffleSplit(n_splits=1, test_size=self.config.test_fraction, random_state=self.config.seed)
        train, test = next(split.split(texts, labels, groups))
        self.fit([texts[i] for i in train], [labels[i] for i in train])
        predicted_labels, probability = self.predict([texts[i] for i in test])
        truth = np.array([labels[i] for i in test])
        predicted = np.array(predicted_labels)
        confident = probability >= self.config.min_confidence
        genres = sorted(set(labels))
        p_all, r_all, _, support = precision_recall_fscore_support(truth, predicted, labels=genres, zero_division=0)
        per_genre = {}
        for j, genre in enumerate(genres):
            predicted_confident = confident & (predicted == genre)
            true_genre = truth == genre
            hits = int((predicted_confident & true_genre).sum())
            per_genre[genre] = {
                "support": int(support[j]),
                "precision": round(float(p_all[j]), 4),
                "recall": round(float(r_all[j]), 4),
                "precision_at_threshold": round(hits / predicted_confident.sum(), 4)
                if predicted_confident.any()
                else None,
                "recall_at_threshold": round(hits / true_genre.sum(), 4) if true_genre.any() else None,
            }
        report = {
            "evaluated": True,
            "split": "group split by first artist (held-out artists unseen in training)",
            "n_train": int(len(train)),
            "n_test": int(len(test)),
            "min_confidence": self.config.min_confidence,
            "accuracy": round(float((predicted == truth).mean()), 4),
            # Baselines a reader needs to judge the numbers: always answering the most frequent
            # genre, and chance level of balanced accuracy (the model is trained class-balanced).
            "majority_baseline_accuracy": round(float(support.max() / max(support.sum(), 1)), 4),
            "balanced_accuracy": round(float(np.mean([r for r, n in zip(r_all, support) if n])), 4),
            "chance_balanced_accuracy": round(1.0 / max(int((support > 0).sum()), 1), 4),
            "coverage_at_threshold": round(float(confident.mean()), 4),
            "accuracy_at_threshold": round(float((predicted[confident] == truth[confident]).mean()), 4)
            if confident.any()
            else None,
            "per_genre": per_genre,
        }
        self.fit(texts, labels)
        return report
