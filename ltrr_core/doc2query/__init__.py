"""doc2query Q2E generation behind one interface (``Q2EGenerator``): metadata templates, queries
learned from the logs for similar entities, and a seq2seq (doc2query-T5-style) backend, with
Doc2Query-- filtering."""

from .base import Q2EGenerator
from .filtering import RelevanceFilter
from .neighbours import LoggedQueryNeighbourGenerator
from .pipeline import predict_q2e
from .templates import TemplateGenerator

__all__ = ["LoggedQueryNeighbourGenerator", "Q2EGenerator", "RelevanceFilter", "TemplateGenerator", "predict_q2e"]
