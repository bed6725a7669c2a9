"""Towers, tasks and the two-tower model that serves all three model types."""

from tandem.models.blocked_softmax import blocked_softmax_loss
from tandem.models.tasks import RankingTask, RetrievalTask
from tandem.models.towers import Tower, mlp
from tandem.models.two_tower import Batch, TwoTowerModel

__all__ = ["Batch", "RankingTask", "RetrievalTask", "Tower", "TwoTowerModel", "blocked_softmax_loss", "mlp"]
